# Fine-tuning the MAE-pre-trained VisionLLaMA-L for 50 epochs (paper Table 3: 85.5), as the official
# lama-large-p16_8xb128-coslr-800-lrd45-50e_in1k.py: lr 4e-3, batch 64 x 8 x 2 accumulation, drop
# path 0.2, layer decay 0.45 (the official config's comment says 0.75; the value is 0.45).
_base_ = ['./visionllama-base-p16_mae-800e-pre_8xb128-coslr-100e_in1k.py']

pretrained = 'pretrain/visionllama-large-mae-800e.pth'
model = dict(
    backbone=dict(
        arch='mae-large',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(in_channels=1024))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=4e-3), accumulative_counts=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=45, eta_min=1e-6, by_epoch=True, begin=5, end=50,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=50)
