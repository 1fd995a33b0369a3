# UperNet on ADE20K (512x512, 160k iterations, batch 16) with the CLIP image tower of ViTamin-B.
# OUR recipe (no paper result); see the ViTamin-S config.
# The same recipe as vitamin-small except the values below.
_base_ = ['./upernet_vitamin-small_clip-pre_8xb2-amp-160k_ade20k-512x512.py']

pretrained = 'pretrain/vitamin-base_datacomp1b-clip.pth'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 768]),
    auxiliary_head=dict(in_channels=768))
