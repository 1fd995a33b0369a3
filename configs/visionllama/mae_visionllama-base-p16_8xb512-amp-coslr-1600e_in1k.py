# MAE pre-training of VisionLLaMA-B, 1600 epochs (paper Table 3: 84.3 fine-tuned, 71.7 linear).
# The official 1600e recipe starts its warm-up at 1e-4 of the lr (800e: 1e-9).
_base_ = ['./mae_visionllama-base-p16_8xb512-amp-coslr-800e_in1k.py']

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=1560, by_epoch=True, begin=40, end=1600,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=1600)
