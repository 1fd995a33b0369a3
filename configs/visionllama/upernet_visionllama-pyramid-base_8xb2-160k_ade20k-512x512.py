# UperNet + Pyramid VisionLLaMA-B on ADE20K (paper Table 4a: 49.1 mIoU, 88.5M params; Twins-B 47.7).
_base_ = ['./upernet_visionllama-pyramid-small_8xb2-160k_ade20k-512x512.py']

pretrained = 'pretrain/visionllama-pyramid-base_in1k.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.2,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
