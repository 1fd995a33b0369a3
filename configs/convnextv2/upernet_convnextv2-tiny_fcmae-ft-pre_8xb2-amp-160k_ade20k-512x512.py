# UperNet on ADE20K (512x512, 160k iterations, batch 16) with ConvNeXt V2-Tiny. Not in the paper
# (Table 7 has Base, Large and Huge only). The Base config's recipe (the official ConvNeXt V1
# multi-scale segmentation config, the paper's multi-scale + flip test at [0.75 ... 1.25] x
# (2048, 512), seed 0, whole-image inference; see that file) with Tiny's values, as the official
# upernet_convnext_tiny_512_160k_ade20k_ms.py: stage-wise layer decay 0.9 with 'num_layers' 6
# (stem and downsamples 0.9^7, stage i 0.9^(6 - i), heads 1), drop path 0.4.
# Checkpoint: the fine-tuned classifier (convnextv2-tiny_fcmae-pre_32xb32-amp-coslr-300e_in1k.py),
# loaded by init_cfg with prefix='backbone.' (stages and the last stage's norm `norm3` load;
# `norm0`-`norm2` are fresh).
_base_ = ['./upernet_convnextv2-base_fcmae-ft-pre_8xb2-amp-160k_ade20k-512x512.py']

pretrained = 'pretrain/convnextv2-tiny_fcmae-ft_in1k.pth'
model = dict(
    backbone=dict(arch='tiny', init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=6))
