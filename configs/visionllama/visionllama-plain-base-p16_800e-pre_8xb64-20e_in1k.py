# VisionLLaMA-B, supervised ImageNet-1k, second stage (paper Table 2: 83.6 top-1): 20 epochs at
# 224 px from the 800-epoch 192-px stage (visionllama-plain-base-p16_8xb256-800e_in1k.py; its last
# checkpoint is `load_from`, weights only, as the official --finetune). The recipe is the official
# fine-tune command of ImageNet1k_SFT.md (main_b.py): AdamW lr 1e-5 (not scaled by batch), eps
# 1e-8, weight decay 0.1 (none on norms, biases, class token, LayerScale), batch 64 x 8 GPUs = 512,
# 5 warm-up epochs from 1e-6 then cosine with min lr 1e-5 (so the lr stays at 1e-5 after the
# warm-up), cross-entropy with label smoothing 0.1 on Mixup 0.8 / CutMix 1.0 targets, RandAugment
# rand-m9-mstd0.5-inc1, no colour jitter (timm drops it when RandAugment is on), random erasing 0,
# no repeated augmentation, drop path 0.2, evaluation at crop ratio 1.0, bf16 autocast, seed 0.
_base_ = ['./visionllama-plain-base-p16_8xb256-800e_in1k.py']

load_from = 'work_dirs/visionllama-plain-base-p16_8xb256-800e_in1k/epoch_800.pth'

model = dict(
    backbone=dict(img_size=224),
    head=dict(loss=dict(_delete_=True, type='LabelSmoothLoss', label_smooth_val=0.1,
                        mode='original')))

# timm's create_transform for training without 3-Augment: RandomResizedCrop (0.08-1, bicubic),
# flip, RandAugment (2 ops, magnitude 9, std 0.5, increasing), random erasing (0 here)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    sampler=dict(_delete_=True, type='ReproducibleSampler',
                 sampler=dict(type='DefaultSampler', shuffle=True)),
    dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-5, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 1e-5, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=15, eta_min=1e-5, by_epoch=True, begin=5, end=20),
]
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=1)
auto_scale_lr = dict(base_batch_size=512)
