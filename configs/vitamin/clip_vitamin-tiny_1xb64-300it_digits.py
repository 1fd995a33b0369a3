# A tiny ViTamin CLIP learns scikit-learn's handwritten digits from captions, then classifies the
# held-out digits zero-shot with prompt templates it never saw as captions.
#   python tools/dataset_converters/digit_captions.py data/digits data/digit_captions
#   python tools/train.py configs/vitamin/clip_vitamin-tiny_1xb64-300it_digits.py
#   python tools/test.py  configs/vitamin/clip_vitamin-tiny_1xb64-300it_digits.py CKPT
# Training streams the webdataset shards (<key>.png + <key>.txt, the DataComp layout) written by
# the first command; testing reads the 359 held-out digits (DigitsDataset, split 'val').
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/digits.py']

image_size = 32
context_length = 16
captions_root = 'data/digit_captions'

model = dict(
    type='ContrastiveCLIP',
    vision_backbone=dict(
        type='ViTamin',
        arch=dict(stem_channels=16, channels=(16, 32), depths=(1, 1), embed_dims=64,
                  num_layers=2, num_heads=2),
        img_size=image_size),
    text_encoder=dict(type='CLIPTextTransformer', embed_dims=64, proj_dims=64, num_layers=2,
                      num_heads=2),
    context_length=context_length,
    zero_shot=dict(
        classes=['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'],
        # none of these was a training caption (see tools/dataset_converters/digit_captions.py)
        templates=['a drawing of the digit {}.', 'a picture of the number {}.', 'this is a {}.',
                   'the handwritten numeral {}.']),
    # grayscale digits loaded as 3 identical channels; mean/std of the training pixels
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[87.0] * 3, std=[103.0] * 3,
                           to_rgb=False))

train_pipeline = [
    dict(type='RandomCrop', crop_size=image_size, padding=2),
    dict(type='TokenizeText', context_length=context_length),
    dict(type='PackInputs', algorithm_keys=['text_tokens']),
]
train_dataloader = dict(
    _delete_=True,
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=None,  # a streamed dataset: the shards are split between ranks and workers
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='WebDatasetImageText', data_root=captions_root,
                 shards='train-{00000..00003}.tar', shuffle_buffer=128, pipeline=train_pipeline))
val_evaluator = dict(topk=(1, 5))  # the held-out digits of the shared digits loaders
test_evaluator = val_evaluator

# OpenCLIP's optimiser (training/main.py:321-355): AdamW, betas (0.9, 0.98), eps 1e-6; no decay on
# norms, biases and logit_scale
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0,
                       custom_keys={'logit_scale': dict(decay_mult=0.0)}))
max_iters = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=30, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0, deterministic=False)
