# Fine-tuning the CLIP image tower of ViTamin-B (DataComp-1B) on ImageNet-1k, 50 epochs. OUR
# recipe (the authors give none): FT-CLIP's ViT-B/16 run, as ViTamin-S; see that config.
# The same recipe as vitamin-small except the values below.
_base_ = ['./vitamin-small_clip-pre_8xb256-amp-coslr-50e_in1k.py']

pretrained = 'pretrain/vitamin-base_datacomp1b-clip.pth'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=768),
)
