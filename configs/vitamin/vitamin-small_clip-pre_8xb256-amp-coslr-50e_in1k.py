# Fine-tuning the CLIP image tower of ViTamin-S (DataComp-1B) on ImageNet-1k, 50 epochs.
# OUR recipe, not the authors': the ViTamin paper and code report CLIP zero-shot results only and
# give no ImageNet fine-tuning recipe. The values follow FT-CLIP (Dong et al., "CLIP
# Itself is a Strong Fine-tuner", arXiv 2212.06138), its released ViT-B/16 run
# (scripts/bash_fine_Openai_CLIP_P16.sh and the defaults of its run_class_finetuning.py):
# AdamW (0.9, 0.999), lr 6e-4 at batch 2048 (8 GPUs x 256), wd 0.05, layer decay 0.6, 10 warm-up
# epochs from 1e-6 then cosine to 1e-6 (both x each group's layer-decay scale), label smoothing
# 0.1, no Mixup / CutMix (FT-CLIP sets both to 0), RandAugment rand-m9-mstd0.5-inc1 + random
# erasing 0.25 (per-pixel noise), head init x0.001 (trunc-normal std 2e-5), EMA 0.9998
# (evaluated), fp16 AMP, OpenAI CLIP mean/std, bicubic RandomResizedCrop 224 and test resize 256 /
# crop 224 (FT-CLIP's crop_pct 0.875). One change: drop path 0.1 (FT-CLIP uses 0 for OpenAI's
# CLIP, trained without it; ViTamin's CLIP towers were trained with 0.1, timm_drop_path in the
# authors' model configs).
# Layer decay: the package's LayerwiseDecayOptimWrapperConstructor with ViTamin's numbering
# (stem, MBConv stages, transition and pos_embed: id 0; block i: i + 1; fc_norm and head: last),
# so the convolutional part gets 0.6^15 of the lr. No weight decay on biases, 1-D parameters and
# pos_embed (the constructor's default; FT-CLIP's too).
# Starting point: a CLIP checkpoint in this package's layout, the image tower under `visual.`
# (an OpenCLIP ViTamin release converted by the ViTamin converter, or our own CLIP run's
# checkpoint). `prefix='visual.'` loads every image-tower tensor, fc_norm included; the CLIP
# projection, text tower and logit scale are ignored and the linear head starts fresh.
_base_ = ['mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
# the runtime entries of configs/_base_/default_runtime.py (a chain that starts at a complete
# stock config cannot inherit it as well: mmengine allows a key in one base only)
runner_type = 'CheckedRunner'

# OpenAI CLIP normalisation, the statistics ViTamin's CLIP training used (open_clip/constants.py).
# to_onehot: the labels reach the label-smoothing loss as one-hot rows made here, outside the
# model's forward (the same loss; given class indices, mmpretrain's LabelSmoothLoss makes them
# itself with a host-side `.item()` check, a graph break under compile=True)
data_preprocessor = dict(
    mean=[0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255],
    std=[0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255],
    to_onehot=True)
bgr_mean = data_preprocessor['mean'][::-1]
bgr_std = data_preprocessor['std'][::-1]

pretrained = 'pretrain/vitamin-small_datacomp1b-clip.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ViTamin',
        arch='small',
        img_size=224,
        out_type='avg_featmap',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='visual.')),
    # the label-smoothing loss is given the class count (the head's 1000; change both together):
    # left unset, mmpretrain's LabelSmoothLoss sets it at its first call, which makes a
    # compile=True model recompile at the second iteration
    head=dict(in_channels=384, loss=dict(num_classes=1000)),
    train_cfg=dict(augments=None),
)

# the stock MAE fine-tuning pipeline with CLIP's mean in the RandAugment padding and the erasing
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    sampler=dict(_delete_=True, type='ReproducibleSampler',
                 sampler=dict(type='DefaultSampler', shuffle=True)),
    batch_size=256, dataset=dict(pipeline=train_pipeline))

lr = 6e-4
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerwiseDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.6))

warmup_epochs, max_epochs = 10, 50
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / lr, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / lr, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=2048)
# EMA 0.9998 (FT-CLIP's --model_ema_decay), validated and tested with the EMA weights
custom_hooks = [dict(type='EMAHook', momentum=2e-4, priority='ABOVE_NORMAL')]

# stop at the first NaN/inf loss or gradient norm; never save NaN weights or a NaN 'best'
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     nonfinite_check=dict(type='NonFiniteCheckHook'),
                     reproducibility=dict(type='ReproducibleRandomnessHook'))
