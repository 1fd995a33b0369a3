# ViTDet Mask R-CNN with the plain VisionLLaMA-B initialised from MAE (paper Table 6: box 52.2, mask
# 46.3 AP): window attention (14x14, window-local RoPE) in all blocks except the global blocks
# 2/5/8/11, a simple feature pyramid from the last block's stride-16 map, Mask R-CNN with LN2d heads
# (4-conv-1-fc box head, 2-conv RPN), large-scale jitter at 1024, AdamW lr 1e-4, wd 0.1, layer decay
# 0.7, batch 4 x 8 GPUs x 2 accumulation steps = 64, 137,250 iterations with steps at 102,937 /
# 125,812 and 250 warm-up iterations (the official config; the paper says 1000), AMP. Data as the
# official lsj-36e_coco-instance.py: flip, resize with ratio 0.1-2.0 of 1024, crop 1024, pad to
# 1024x1024 with pixel value 114 before normalisation; testing resizes the long side to 1024 and
# pads to 1024x1024 with 114, so the global blocks always see the 64x64 grid they were trained on
# (mmdet's stock LSJ base tests at 1333x800 without padding, and pads with 0 after normalisation).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py',
]

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
# the runtime entries of configs/_base_/default_runtime.py (a chain that starts at a complete
# stock config cannot inherit it as well: mmengine allows a key in one base only)
runner_type = 'CheckedRunner'

image_size = (1024, 1024)
norm_cfg = dict(type='LN2d', requires_grad=True)
pretrained = 'pretrain/visionllama-base-mae-800e.pth'
model = dict(
    data_preprocessor=dict(
        pad_size_divisor=32,
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(
        _delete_=True,
        type='VisionLLaMA',
        arch='mae-base',
        ffn_bias=True,
        ffn_drop_path=False,
        img_size=1024,
        patch_size=16,
        with_cls_token=False,
        out_type='featmap',
        final_norm=False,
        out_indices=[11],
        window_size=14,
        global_attn_indexes=[2, 5, 8, 11],
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(
        _delete_=True,
        type='SimpleFPN',
        backbone_channel=768,
        in_channels=[192, 384, 768, 768],
        out_channels=256,
        num_outs=5),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size,
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=8,
    sampler=dict(_delete_=True, type='ReproducibleSampler',
                 sampler=dict(type='InfiniteSampler', shuffle=True)),
    dataset=dict(
        _delete_=True,
        type=_base_.dataset_type,
        data_root=_base_.data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=None))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    accumulative_counts=2,
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    constructor='LayerwiseDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7))

max_iters = 137250
interval = 5000
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
         milestones=[102937, 125812], gamma=0.1),
]
default_hooks = dict(
    nonfinite_check=dict(type='NonFiniteCheckHook'),  # stop at a NaN/inf loss; never save NaN
    reproducibility=dict(type='ReproducibleRandomnessHook'),
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=interval,
                    max_keep_ckpts=5))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=64)
