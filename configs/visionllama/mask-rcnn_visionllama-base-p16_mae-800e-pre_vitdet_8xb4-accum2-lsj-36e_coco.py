# ViTDet Mask R-CNN with the plain VisionLLaMA-B initialised from MAE (paper Table 6: box 52.2,
# mask 46.3 AP), spec §6.3: window attention (14x14, window-local RoPE) in all blocks except the
# global blocks 2/5/8/11, a simple feature pyramid from the last block's stride-16 map, Mask R-CNN with
# LN2d heads (4-conv-1-fc box head, 2-conv RPN), large-scale jitter at 1024, AdamW lr 1e-4, wd 0.1,
# layer decay 0.7, batch 4 x 8 GPUs x 2 accumulation steps = 64, 137,250 iterations with steps at
# 102,937 / 125,812 and 250 warm-up iterations (the official config; the paper says 1000), AMP.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py',
]

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)

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

train_dataloader = dict(batch_size=4, num_workers=8, sampler=dict(type='InfiniteSampler'))

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
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(by_epoch=False, interval=interval, max_keep_ckpts=5))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=64)
