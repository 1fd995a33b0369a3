# UperNet + Pyramid VisionLLaMA-L on ADE20K (paper Table 4a: 50.0 mIoU, 133M params; Twins-L 48.8).
_base_ = ['./upernet_visionllama-pyramid-small_8xb2-160k_ade20k-512x512.py']

pretrained = 'pretrain/visionllama-pyramid-large_in1k.pth'
model = dict(
    backbone=dict(arch='large', drop_path_rate=0.3,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
