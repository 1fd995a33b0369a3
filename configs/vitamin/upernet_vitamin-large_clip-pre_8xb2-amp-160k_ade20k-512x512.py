# UperNet on ADE20K (512x512, 160k iterations, batch 16) with the CLIP image tower of ViTamin-L
# (the 224 checkpoint). OUR recipe (no paper result); see the ViTamin-S config.
# Changed: layer decay 0.85 for the 31 blocks, so the convolutional part gets 0.85^32 = 5.5e-3 of
# the lr, near what 0.65 gives the 12-block MAE-B patch embedding in mmseg's config (0.65^13 =
# 3.7e-3); 0.65 would leave it 1e-6.
# The same recipe as vitamin-small except the values below.
_base_ = ['./upernet_vitamin-small_clip-pre_8xb2-amp-160k_ade20k-512x512.py']

pretrained = 'pretrain/vitamin-large_datacomp1b-clip.pth'
model = dict(
    backbone=dict(arch='large', init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[160, 320, 1024]),
    auxiliary_head=dict(in_channels=1024))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.85))
