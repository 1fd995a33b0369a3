# Mask R-CNN + FPN on COCO with the CLIP image tower of ViTamin-B, 3x schedule. OUR recipe (no
# paper result); see the ViTamin-S config.
# The same recipe as vitamin-small except the values below.
_base_ = ['./mask-rcnn_vitamin-small_clip-pre_fpn_8xb4-amp-lsj-3x_coco.py']

pretrained = 'pretrain/vitamin-base_datacomp1b-clip.pth'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 768]))
