# scikit-learn's handwritten digits (1,438 train / 359 val images, 8x8 upsampled to 32x32), written
# once by DigitsDataset to data/digits in the ImageNet folder format and read through mmpretrain's
# stock pipeline: grayscale loaded as 3 identical channels, a 2-pixel-padded random crop for
# training, top-1 accuracy on the held-out split. Configs change image_size / data_root / pipeline
# in the dataset dicts (their values here are not variables that a child can reset).
train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    collate_fn=dict(type='default_collate'),
    sampler=dict(type='ReproducibleSampler', sampler=dict(type='DefaultSampler', shuffle=True)),
    dataset=dict(
        type='DigitsDataset', data_root='data/digits', split='train', image_size=32,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='RandomCrop', crop_size=32, padding=2),
            dict(type='PackInputs'),
        ]))
val_dataloader = dict(
    batch_size=120,
    num_workers=2,
    persistent_workers=True,
    collate_fn=dict(type='default_collate'),
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='DigitsDataset', data_root='data/digits', split='val', image_size=32,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(32, 32)),
            dict(type='PackInputs'),
        ]))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
