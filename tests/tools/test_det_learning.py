"""Detection learning test: a tiny pyramid backbone + Mask R-CNN learns the shapes fixture.

A user's child config inherits the shipped config and changes the backbone size, the image size and
the schedule (the same mechanism as any custom experiment); evaluation is on the training images.
"""
import re

from ..conftest import run_tool

DET_CHILD = """
_base_ = ['{repo}/configs/visionllama/mask-rcnn_visionllama-pyramid-base_fpn_8xb2-ms-crop-3x_coco.py']
dims = [32, 64, 96, 128]
classes = ('rectangle', 'disc', 'triangle')
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=dims, depths=[2, 2, 2, 2],
                            num_heads=[1, 2, 3, 4], ffn_dims=[64, 128, 256, 256]),
                  init_cfg=None, drop_path_rate=0.0),
    # a narrow neck and heads to match the tiny backbone (the stock widths are 256/1024)
    neck=dict(in_channels=dims, out_channels=64),
    # anchors of 16..256 px: the shapes are 12..48 px (the stock 32..512 px miss the small ones)
    rpn_head=dict(in_channels=64, feat_channels=64, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(num_classes=3, in_channels=64, fc_out_channels=256),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(num_classes=3, in_channels=64, conv_out_channels=64)),
    # fewer proposals and sampled RoIs: RoIAlign dominates a CPU step
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=100),
                   rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 64), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor')),
]
data = dict(data_root='{root}/', ann_file='annotations/instances_train2017.json',
            data_prefix=dict(img='train2017/'), metainfo=dict(classes=classes))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        sampler=dict(type='InfiniteSampler'),
                        dataset=dict(data, pipeline=pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data, pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file='{root}/annotations/instances_train2017.json')
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end={iters}, milestones=[{step}]),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={iters}, val_interval={iters})
default_hooks = dict(checkpoint=dict(by_epoch=False, interval={iters}),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
"""


def test_mask_rcnn_learns_shapes(python, repo, coco_root, tmp_path):
    cfg = tmp_path / 'mask_rcnn_tiny_shapes.py'
    cfg.write_text(DET_CHILD.format(repo=repo, root=coco_root, iters=700, step=600))
    out = run_tool([python, 'tools/train.py', str(cfg), '--work-dir', str(tmp_path)])
    bbox = float(re.findall(r'coco/bbox_mAP: ([\d.-]+)', out)[-1])
    bbox50 = float(re.findall(r'coco/bbox_mAP_50: ([\d.-]+)', out)[-1])
    segm = float(re.findall(r'coco/segm_mAP: ([\d.-]+)', out)[-1])
    print(f'Mask R-CNN + tiny pyramid VisionLLaMA, shapes (train images): bbox mAP {bbox:.3f} '
          f'(AP50 {bbox50:.3f}), segm mAP {segm:.3f}')
    # 700 CPU iterations from scratch (~3.5 min): far from converged, but clearly learning (chance
    # is 0). Seeded; a from-scratch detector on 8 images is seed- and environment-sensitive: at
    # 400 iterations seeds 0/1/2/3 gave bbox mAP 0.029/0.072/0.002/0.031 on one environment and
    # seed 0 0.008 on the next (same code); at 700 seeds 0/1 give 0.020/0.035 (AP50 0.061/0.130).
    assert bbox >= 0.01 and bbox50 >= 0.05, out[-3000:]
