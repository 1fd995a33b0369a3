# Fine-tuning the CLIP image tower of ViTamin-L (DataComp-1B, 224) on ImageNet-1k, 30 epochs.
# OUR recipe (the authors give none): FT-CLIP's released ViT-L/14 run
# (scripts/bash_fine_Openai_CLIP_Large_P14.sh): lr 4e-4 at batch 2048 (8 GPUs x 64 x 4
# accumulation steps), 5 warm-up epochs, 30 epochs; everything else as ViTamin-S (see that
# config), drop path 0.1 included.
# One change: layer decay 0.7 instead of FT-CLIP's 0.65. ViTamin-L has 31 blocks where ViT-L/14
# has 24; with 0.65 its convolutional part would get 0.65^32 = 1.0e-6 of the lr (ViT-L/14's patch
# embedding gets 0.65^25 = 2.1e-5), with 0.7 it gets 0.7^32 = 1.1e-5.
# The same recipe as vitamin-small except the values below.
_base_ = ['./vitamin-small_clip-pre_8xb256-amp-coslr-50e_in1k.py']

pretrained = 'pretrain/vitamin-large_datacomp1b-clip.pth'
model = dict(
    backbone=dict(arch='large', init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=1024),
)
train_dataloader = dict(batch_size=64)

lr = 4e-4
optim_wrapper = dict(
    optimizer=dict(lr=lr), accumulative_counts=4, paramwise_cfg=dict(layer_decay_rate=0.7))

warmup_epochs, max_epochs = 5, 30
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / lr, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / lr, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
