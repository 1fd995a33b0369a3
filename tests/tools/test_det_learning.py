"""Detection learning test: a tiny pyramid backbone + Mask R-CNN learns the shapes fixture.

A user's child config inherits the shipped config and changes the backbone size, the image size and
the schedule (the same mechanism as any custom experiment). It trains on 24 images and is
evaluated on 12 held-out images (other photo crops, other shapes): chance is 0 mAP. mmdet's
``DetInferencer`` on the trained checkpoint must give the evaluated mAP.
"""
import json
import os.path as osp
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
data = dict(data_root='{root}/', metainfo=dict(classes=classes))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        sampler=dict(sampler=dict(_delete_=True, type='InfiniteSampler')),
                        dataset=dict(data, ann_file='annotations/instances_train2017.json',
                                     data_prefix=dict(img='train2017/'), pipeline=pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data, ann_file='annotations/instances_val2017.json',
                                   data_prefix=dict(img='val2017/'), pipeline=test_pipeline,
                                   test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file='{root}/annotations/instances_val2017.json')
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr={lr}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end={iters}, milestones=[{step}]),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={iters}, val_interval={iters})
default_hooks = dict(checkpoint=dict(by_epoch=False, interval={iters}),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
randomness = dict(seed={seed})
"""


NUM_TRAIN, NUM_VAL = 24, 12
ITERS, STEP, LR, SEED = 700, 600, 1e-3, 0
# Held-out bars under every seed measured, with a margin: at these settings seeds 0/1/2 gave bbox
# mAP 0.009/0.007/0.008 and AP50 0.034/0.041/0.048 (at 450 iterations: 0.025/0.009/0.007 and
# 0.090/0.023/0.024, a wider spread). The test runs one seed; 700 CPU iterations from scratch are
# far from converged, but chance is 0.
BAR_MAP, BAR_AP50 = 0.003, 0.02


def test_mask_rcnn_learns_shapes_held_out(python, repo, tmp_path):
    from ..data_fixtures import write_coco
    root = write_coco(str(tmp_path / 'coco'), num_train=NUM_TRAIN, num_val=NUM_VAL)
    cfg = tmp_path / 'mask_rcnn_tiny_shapes.py'
    cfg.write_text(DET_CHILD.format(repo=repo, root=root, iters=ITERS, step=STEP, lr=LR,
                                    seed=SEED))
    out = run_tool([python, 'tools/train.py', str(cfg), '--work-dir', str(tmp_path / 'work')])
    bbox = float(re.findall(r'coco/bbox_mAP: ([\d.-]+)', out)[-1])
    bbox50 = float(re.findall(r'coco/bbox_mAP_50: ([\d.-]+)', out)[-1])
    segm = float(re.findall(r'coco/segm_mAP: ([\d.-]+)', out)[-1])
    print(f'Mask R-CNN + tiny pyramid VisionLLaMA, shapes, {ITERS} iterations on {NUM_TRAIN} '
          f'images, seed {SEED}: held-out ({NUM_VAL} images) bbox mAP {bbox:.3f} (bar '
          f'{BAR_MAP}, {bbox - BAR_MAP:+.3f}), AP50 {bbox50:.3f} (bar {BAR_AP50}, '
          f'{bbox50 - BAR_AP50:+.3f}), segm mAP {segm:.3f}; chance is 0')
    assert bbox >= BAR_MAP and bbox50 >= BAR_AP50, out[-3000:]

    # mmdet's own DetInferencer on the trained checkpoint reproduces the evaluated bbox mAP
    from mmdet.apis import DetInferencer
    from mmdet.evaluation import CocoMetric
    inferencer = DetInferencer(model=str(cfg), weights=str(tmp_path / 'work' / f'iter_{ITERS}.pth'),
                               device='cpu', show_progress=False)
    ann_file = osp.join(root, 'annotations/instances_val2017.json')
    metric = CocoMetric(ann_file=ann_file, metric='bbox')
    metric.dataset_meta = dict(classes=('rectangle', 'disc', 'triangle'))
    with open(ann_file) as f:
        images = json.load(f)['images']
    for image in images:
        pred = inferencer(osp.join(root, 'val2017', image['file_name']),
                          return_datasamples=True)['predictions'][0]
        metric.process({}, [dict(img_id=image['id'], ori_shape=pred.ori_shape,
                                 pred_instances=pred.pred_instances.to_dict())])
    scores = metric.evaluate(len(images))
    print(f'DetInferencer on the trained checkpoint, {len(images)} held-out images: bbox mAP '
          f'{scores["coco/bbox_mAP"]:.3f}, AP50 {scores["coco/bbox_mAP_50"]:.3f}')
    assert (scores['coco/bbox_mAP'], scores['coco/bbox_mAP_50']) == (bbox, bbox50)
