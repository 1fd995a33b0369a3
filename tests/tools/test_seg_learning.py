"""Segmentation learning test: a tiny pyramid backbone + UperNet fits the shapes fixture.

A user's child config inherits the shipped config and changes the backbone size, the image size and
the schedule (the same mechanism as any custom experiment); evaluation is on the training images.
mmseg's ``MMSegInferencer`` on the trained checkpoint must give the evaluated pixel accuracy.
"""
import glob
import os.path as osp
import re

import numpy as np
from PIL import Image

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
    acc, miou = map(float, re.findall(
        r'Iter\(val\) \[\d+/\d+\]\s+aAcc: ([\d.]+)\s+mIoU: ([\d.]+)', out)[-1])
    print(f'UperNet + tiny pyramid VisionLLaMA, shapes (train images): mIoU {miou:.2f}')
    assert miou >= 80.0, out[-3000:]

    # mmseg's own MMSegInferencer on the trained checkpoint reproduces the evaluated pixel accuracy
    from mmseg.apis import MMSegInferencer
    inferencer = MMSegInferencer(model=str(cfg), weights=str(tmp_path / 'iter_300.pth'),
                                 device='cpu')
    images = sorted(glob.glob(osp.join(ade20k_root, 'images/training/*.jpg')))
    correct = labelled = 0
    for path in images:
        pred = inferencer(path)['predictions']
        ann = np.asarray(Image.open(path.replace('images', 'annotations').replace('.jpg', '.png')))
        gt = ann.astype(np.int64) - 1  # reduce_zero_label: 0 is ignored, 1.. are classes 0..
        correct += int(((pred == gt) & (gt >= 0)).sum())
        labelled += int((gt >= 0).sum())
    print(f'MMSegInferencer on the trained checkpoint: pixel accuracy {100 * correct / labelled:.2f}'
          f' on {len(images)} images (evaluated aAcc {acc:.2f})')
    assert round(100 * correct / labelled, 2) == acc
