# Mask R-CNN + FPN on COCO, 3x schedule (36 epochs, steps at 27 / 33), with large-scale jittering:
# mmdet's ConvNeXt Mask R-CNN 3x config with mmdet's LSJ train pipeline
# (mmdet::common/lsj-100e_coco-instance.py: 1024x1024, scale 0.1-2.0, absolute-range crop) instead
# of its multi-scale crop, 4 images per GPU (8 x 4 = 32), and AdamW (lr 1e-4, wd 0.05) under AMP
# with the package's layer-wise lr decay (each config sets the rate and its backbone).
_base_ = ['mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
# the runtime entries of configs/_base_/default_runtime.py (a chain that starts at a complete
# stock config cannot inherit it as well: mmengine allows a key in one base only)
runner_type = 'CheckedRunner'

image_size = (1024, 1024)
train_pipeline = [  # mmdet::common/lsj-100e_coco-instance.py's (tests/test_configs.py checks)
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size,
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    sampler=dict(_delete_=True, type='ReproducibleSampler',
                 sampler=dict(type='DefaultSampler', shuffle=True)),
    batch_size=4, dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerwiseDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=None))  # set by each config

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     nonfinite_check=dict(type='NonFiniteCheckHook'),
                     reproducibility=dict(type='ReproducibleRandomnessHook'))
