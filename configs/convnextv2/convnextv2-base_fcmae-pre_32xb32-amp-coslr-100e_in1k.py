# Fine-tuning the FCMAE-pre-trained ConvNeXt V2-Base on ImageNet-1k, 100 epochs
# (paper Table 11; top-1 84.9 after 1600 pre-training epochs, Table 14). Official recipe
# (ConvNeXt-V2 TRAINING.md, main_finetune.py):
# AdamW (0.9, 0.999), lr = blr 0.000625 x 1024 / 256 = 0.0025 (32 GPUs x 32), wd 0.05,
# layer decay 'group' 0.6, 20 warm-up epochs then cosine to 1e-6 (x each group's
# layer-decay scale, as the official schedule), label smoothing 0.1, Mixup 0.8 / CutMix
# 1.0, drop path 0.1, head init x0.001, EMA 0.9999 (evaluated), AMP, RandAugment
# rand-m9-mstd0.5-inc1 + random erasing 0.25, test resize 256 / crop 224 bicubic (inherited).
# No weight decay on biases and 1-D parameters (norms, GRN gamma/beta): the constructor's default.
# Seed 0, offset by the rank (the official `--seed 0`, seeded `seed + rank`).
# Warm-up starts at 1e-6 x lr: the official schedule starts at 0, which mmengine's LinearLR
# (a multiplicative update) cannot start from.
# mmpretrain's convnext-v2 config (made for converted weights) differs in: no layer decay, head
# init std .02, cosine to 1e-5.
# blr 6.25e-4 is the official TRAINING.md command; the paper's Table 11 prints 6.25e-3.
# The FCMAE checkpoint (our `fcmae_convnextv2-*` run's epoch_N.pth, or an official one converted
# by tools/model_converters/convnextv2_official.py) is loaded by the backbone's init_cfg with
# prefix='backbone.': every encoder tensor loads, the decoder (`neck.*`) is ignored and the final
# norm `norm3` and the head start fresh (Pretrained init is partial by design and logs them).
_base_ = ['./_base_/convnextv2_fcmae-ft_32xb32-amp-coslr_in1k.py']

pretrained = 'pretrain/fcmae_convnextv2-base_in1k.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.1, layer_decay_type='group',
                  init_cfg=dict(checkpoint=pretrained)),
    head=dict(loss=dict(label_smooth_val=0.1)),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)

lr = 0.000625 * 1024 / 256
optim_wrapper = dict(optimizer=dict(lr=lr, weight_decay=0.05),
                     paramwise_cfg=dict(layer_decay_rate=0.6))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / lr, by_epoch=True, begin=20,
         end=100, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
