# Mask R-CNN + FPN on COCO with ConvNeXt V2-Base, 3x schedule (36 epochs). Paper Table 6 (arXiv
# 2301.00808, read from a markdown transcription of the paper): box 52.9 / mask 46.6 AP (V2-B FCMAE;
# V2-B supervised 51.0 / 45.6). Paper App. A.3: mmdet, 3x, batch 32, AdamW lr 1e-4, wd 0.05, sweeps
# over layer decay {0.9, 0.95} and drop path {0.2, 0.3, 0.4, 0.5} (the chosen values are not given),
# large-scale jittering (1024x1024, scale 0.1-2.0), single-scale test with soft-NMS; initialised
# from "the final model weights from ImageNet-1K pre-training" (mmdet's ConvNeXt-V2 project
# reproduced 52.9 box AP for Base from the FCMAE pre-training checkpoint, so that is the default
# here; a fine-tuned classifier checkpoint loads the same way). mmdet's ConvNeXt Mask R-CNN 3x
# config (which follows the official ConvNeXt (V1) detection config
# object_detection/configs/convnext/mask_rcnn_convnext_tiny_*_adamw_3x_coco_in1k.py) with the
# backbone swapped and the paper's changes and the official warm-up: LSJ 1024 (0.1-2.0) instead of
# multi-scale crop, batch 8 x 4 = 32, soft-NMS in the R-CNN test, 500 linear warm-up iterations from
# 0.001 x lr (the official mmdet 2.x schedule_1x's; mmdet 3.x's stock config has 1000); kept from
# the stock config: AdamW lr 1e-4 wd 0.05, layer decay 0.95 (in the sweep), steps at epochs 27/33,
# AMP; drop path 0.4 (in the sweep, mmdet's project value). Layer decay: the package's
# LayerwiseDecayOptimWrapperConstructor with the backbone's 'group' numbering, the official V1
# detection code's 'layer_wise' grouping (layer_decay_optimizer_constructor.py: 12 groups, 6 for
# Tiny), which mmdet's stock ConvNeXt decay also uses; no weight decay on biases and 1-D parameters
# (norms, GRN gamma/beta). Checkpoint: FCMAE pre-training (fcmae_convnextv2-base_*.py) loaded by
# init_cfg with prefix='backbone.' (every stage loads; the per-stage output norms `norm0`-`norm3`
# are fresh).
_base_ = ['../_base_/mask-rcnn_fpn_8xb4-amp-lsj-3x_coco.py']

pretrained = 'pretrain/fcmae_convnextv2-base_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXtV2',
        arch='base',
        out_indices=(0, 1, 2, 3),
        gap_before_final_norm=False,
        drop_path_rate=0.4,
        layer_decay_type='group',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[128, 256, 512, 1024]),
    test_cfg=dict(rcnn=dict(nms=dict(type='soft_nms', iou_threshold=0.5))))

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
