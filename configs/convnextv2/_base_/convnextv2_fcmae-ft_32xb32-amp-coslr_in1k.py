# The fine-tuning recipe shared by every convnextv2-*_fcmae-pre_32xb32 config (official
# main_finetune.py / TRAINING.md): AdamW (0.9, 0.999) under AMP, layer-wise lr decay, cosine to
# 1e-6 x lr per step, head init x0.001, EMA 0.9999 (evaluated), seed 0 offset by the rank, the
# last incomplete batch dropped; RandAugment + random erasing and the 256 / 224 bicubic test crop
# come from mmpretrain's convnext-v2 config. Each size config sets the arch, head width, drop
# path, label smoothing, Mixup/CutMix, lr, weight decay, layer decay and schedule.
_base_ = ['mmpretrain::convnext_v2/convnext-v2-base_32xb32_in1k.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
# the runtime entries of configs/_base_/default_runtime.py (a chain that starts at a complete
# stock config cannot inherit it as well: mmengine allows a key in one base only)
runner_type = 'CheckedRunner'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXtV2',
        arch='base',
        drop_path_rate=0.1,
        layer_decay_type='single',
        # the FCMAE encoder, loaded with prefix='backbone.' (its decoder `neck.*` is ignored)
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')),
    head=dict(
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1),
        # official head_init_scale 0.001 on trunc_normal(std .02): std 2e-5, zero bias
        init_cfg=dict(_delete_=True, type='TruncNormal', layer='Linear', std=2e-5, bias=0.)),
)

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=2.5e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerwiseDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.6))

randomness = dict(seed=0, diff_rank_seed=True)
# the official loader drops the last incomplete batch of each epoch
train_dataloader = dict(
    drop_last=True,
    sampler=dict(_delete_=True, type='ReproducibleSampler',
                 sampler=dict(type='DefaultSampler', shuffle=True)))
# EMA 0.9999, validated and tested with the EMA weights (mmpretrain's EMAHook, as the stock config)
custom_hooks = [dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')]

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     nonfinite_check=dict(type='NonFiniteCheckHook'),
                     reproducibility=dict(type='ReproducibleRandomnessHook'))
