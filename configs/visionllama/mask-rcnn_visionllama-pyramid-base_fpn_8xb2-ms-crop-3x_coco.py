# Mask R-CNN + FPN with Pyramid VisionLLaMA-B on COCO, 3x schedule with DETR-style multi-scale crop
# augmentation (paper Table 5: box 49.1 / mask 43.8 AP, 76.3M params): mmdet's Swin Mask R-CNN 3x
# recipe (AdamW lr 1e-4, wd 0.05, no decay on norms, 1000 warm-up iterations, steps at epochs 27 and
# 33, batch 2 x 8) with the backbone swapped, as the official
# mask-rcnn_twins-b-p4-w7_fpn_ms-crop-3x_coco.py; auto_scale=True (released rule), drop path 0.2,
# fp16 AMP (the official command passes --amp). The official 'norm' custom key catches its block
# norms norm1/norm2; ours are named ln1/ln2, so every LayerNorm is caught by norm_decay_mult=0. The
# stock data preprocessor pads every batch, in training and testing, to a multiple of 32
# (pad_size_divisor=32, inherited).
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
# the runtime entries of configs/_base_/default_runtime.py (a chain that starts at a complete
# stock config cannot inherit it as well: mmengine allows a key in one base only)
runner_type = 'CheckedRunner'

pretrained = 'pretrain/visionllama-pyramid-base_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='PyramidVisionLLaMA',
        arch='base',
        out_indices=(0, 1, 2, 3),
        out_type='featmap',
        auto_scale=True,
        auto_scale_rule='official',
        gsa_key_pos='official',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(
    type='AmpOptimWrapper',  # dynamic loss scaling, as --amp
    paramwise_cfg=dict(norm_decay_mult=0.0))

# stop at the first NaN/inf loss or gradient norm; never save NaN weights or a NaN 'best'
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     nonfinite_check=dict(type='NonFiniteCheckHook'),
                     reproducibility=dict(type='ReproducibleRandomnessHook'))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='ReproducibleSampler',
                 sampler=dict(type='DefaultSampler', shuffle=True)))
