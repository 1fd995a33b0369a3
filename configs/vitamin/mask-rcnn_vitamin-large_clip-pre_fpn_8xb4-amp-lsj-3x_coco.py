# Mask R-CNN + FPN on COCO with the CLIP image tower of ViTamin-L (the 224 checkpoint), 3x
# schedule. OUR recipe (no paper result); see the ViTamin-S config.
# Changed: layer decay 0.85 for the 31 blocks, so the convolutional part gets 0.85^32 = 5.5e-3 of
# the lr, near what ViTDet's 0.8 gives the 24-block ViT-L patch embedding (0.8^25 = 3.8e-3);
# activation checkpointing of every block (4096 tokens per 1024x1024 image, 4 images per GPU).
# The same recipe as vitamin-small except the values below.
_base_ = ['./mask-rcnn_vitamin-small_clip-pre_fpn_8xb4-amp-lsj-3x_coco.py']

pretrained = 'pretrain/vitamin-large_datacomp1b-clip.pth'
model = dict(
    backbone=dict(arch='large', with_cp=True, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[160, 320, 1024]))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.85))
