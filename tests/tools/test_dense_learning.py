"""Dense learning tests: tiny backbones fit the shapes fixtures through the stock runners.

A user's child config inherits the shipped config and changes the backbone size, the image size and
the schedule (the same mechanism as any custom experiment); evaluation is on the training images.
"""
import re

from ..conftest import run_tool

SEG_CHILD = """
_base_ = ['{repo}/configs/visionllama/upernet_visionllama-pyramid-small_8xb2-160k_ade20k-512x512.py']
dims = [32, 64, 96, 128]
model = dict(
    data_preprocessor=dict(size=(64, 96)),
    backbone=dict(arch=dict(_delete_=True, embed_dims=dims, depths=[2, 2, 2, 2], num_heads=[1, 2, 3, 4],
                            ffn_dims=[64, 128, 256, 256]), init_cfg=None, drop_path_rate=0.0),
    decode_head=dict(in_channels=dims, channels=64),
    auxiliary_head=dict(in_channels=96, channels=32),
    test_cfg=dict(mode='whole'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
data = dict(data_root='{root}', pipeline=train_pipeline,
            data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'))
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=data)
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data, pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=30, end={iters}, by_epoch=False),
]
train_cfg = dict(max_iters={iters}, val_interval={iters})
default_hooks = dict(checkpoint=dict(interval={iters}), logger=dict(interval=50))
randomness = dict(seed=0)
"""


def test_upernet_fits_shapes(python, repo, ade20k_root, tmp_path):
    cfg = tmp_path / 'upernet_tiny_shapes.py'
    cfg.write_text(SEG_CHILD.format(repo=repo, root=ade20k_root, iters=300))
    out = run_tool([python, 'tools/train.py', str(cfg), '--work-dir', str(tmp_path)])
    miou = float(re.findall(r'Iter\(val\) \[\d+/\d+\]\s+aAcc: [\d.]+\s+mIoU: ([\d.]+)', out)[-1])
    print(f'UperNet + tiny pyramid VisionLLaMA, shapes (train images): mIoU {miou:.2f}')
    assert miou >= 80.0, out[-3000:]


DET_CHILD = """
_base_ = ['{repo}/configs/visionllama/mask-rcnn_visionllama-pyramid-base_fpn_ms-crop-3x_coco.py']
dims = [32, 64, 96, 128]
classes = ('rectangle', 'disc', 'triangle')
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=dims, depths=[2, 2, 2, 2],
                            num_heads=[1, 2, 3, 4], ffn_dims=[64, 128, 256, 256]),
                  init_cfg=None, drop_path_rate=0.0),
    neck=dict(in_channels=dims),
    roi_head=dict(bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)),
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
    cfg.write_text(DET_CHILD.format(repo=repo, root=coco_root, iters=200, step=170))
    out = run_tool([python, 'tools/train.py', str(cfg), '--work-dir', str(tmp_path)])
    bbox = float(re.findall(r'coco/bbox_mAP: ([\d.-]+)', out)[-1])
    bbox50 = float(re.findall(r'coco/bbox_mAP_50: ([\d.-]+)', out)[-1])
    segm = float(re.findall(r'coco/segm_mAP: ([\d.-]+)', out)[-1])
    print(f'Mask R-CNN + tiny pyramid VisionLLaMA, shapes (train images): bbox mAP {bbox:.3f} '
          f'(AP50 {bbox50:.3f}), segm mAP {segm:.3f}')
    # 200 CPU iterations from scratch: far from converged, but clearly learning (chance is 0)
    assert bbox >= 0.01 and bbox50 >= 0.05, out[-3000:]
