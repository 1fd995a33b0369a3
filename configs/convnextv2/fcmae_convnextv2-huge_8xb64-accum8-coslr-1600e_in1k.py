# FCMAE pre-training of ConvNeXt V2-Huge, 1600 epochs (the released weights; fine-tuned
# IN-1k top-1 86.3, paper Table 14). Same warm-up (40 epochs), cosine over the rest;
# the warm-up starts at 1e-9 x lr (the official one at 0, which mmengine's LinearLR cannot start
# from).
_base_ = ['./fcmae_convnextv2-huge_8xb64-accum8-coslr-800e_in1k.py']

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=1560, eta_min=0., by_epoch=True, begin=40, end=1600,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=1600)
