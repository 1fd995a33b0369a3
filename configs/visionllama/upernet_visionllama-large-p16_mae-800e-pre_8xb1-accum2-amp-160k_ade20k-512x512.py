# UperNet on ADE20K with the plain VisionLLaMA-L (MAE, released 4x SwiGLU: hidden 11008):
# blocks [7, 11, 15, 23], 1024 channels, UPerHead channels 1024, layer decay over 24 blocks,
# batch 1 x 8 GPUs with 2-step gradient accumulation.
_base_ = ['./upernet_visionllama-base-p16_mae-800e-pre_8xb2-amp-160k_ade20k-512x512.py']

pretrained = 'pretrain/visionllama-large-mae-800e.pth'
model = dict(
    backbone=dict(
        arch='mae-large',
        out_indices=[7, 11, 15, 23],
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(embed_dim=1024),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024], channels=1024),
    auxiliary_head=dict(in_channels=1024))
train_dataloader = dict(batch_size=1)
optim_wrapper = dict(accumulative_counts=2)
