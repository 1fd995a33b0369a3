# VisionLLaMA-B, supervised on ImageNet-1k (paper Table 2: 83.6 top-1 after 800 epochs at 192 px
# and 20 epochs of fine-tuning at 224). This is the 800-epoch stage: training crops of 192 px,
# evaluation at 224 (AS2DRoPE off, as in the released recipe). The 20-epoch stage is the same
# config with `--cfg-options train_cfg.max_epochs=20 load_from=<800e ckpt>` and a 224 crop.
_base_ = ['./_base_/visionllama-plain_deit3-recipe_in1k.py']

model = dict(backbone=dict(arch='base', img_size=192, drop_path_rate=0.2),
             head=dict(in_channels=768))
optim_wrapper = dict(optimizer=dict(lr=3e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 3e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=795, eta_min=1e-5, by_epoch=True, begin=5, end=800),
]
# the base pipeline with 192-px training crops
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=192, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    {{_base_.three_augment}},
    dict(type='ColorJitter', brightness=0.3, contrast=0.3, saturation=0.3),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
