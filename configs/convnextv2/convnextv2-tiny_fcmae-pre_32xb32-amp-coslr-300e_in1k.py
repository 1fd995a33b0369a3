# Fine-tuning the FCMAE-pre-trained ConvNeXt V2-Tiny on ImageNet-1k, 300 epochs
# (paper Table 10; top-1 83.0 after 800 pre-training epochs, Table 14). Official recipe
# (ConvNeXt-V2 TRAINING.md, main_finetune.py):
# AdamW (0.9, 0.999), lr = blr 0.0008 x 1024 / 256 = 0.0032 (32 GPUs x 32), wd 0.05,
# layer decay 'single' 0.9, 40 warm-up epochs then cosine to 1e-6 (x each group's
# layer-decay scale, as the official schedule), label smoothing 0.1, Mixup 0.8 / CutMix
# 1.0, drop path 0.2, head init x0.001, EMA 0.9999 (evaluated), AMP, RandAugment
# rand-m9-mstd0.5-inc1 + random erasing 0.25, test resize 256 / crop 224 bicubic (inherited).
# No weight decay on biases and 1-D parameters (norms, GRN gamma/beta): the constructor's default.
# Seed 0, offset by the rank (the official `--seed 0`, seeded `seed + rank`).
# Warm-up starts at 1e-6 x lr: the official schedule starts at 0, which mmengine's LinearLR
# (a multiplicative update) cannot start from.
# mmpretrain's convnext-v2 config (made for converted weights) differs in: no layer decay, head
# init std .02, cosine to 1e-5, label smoothing 0.2.
# The FCMAE checkpoint (our `fcmae_convnextv2-*` run's epoch_N.pth, or an official one converted
# by tools/model_converters/convnextv2_official.py) is loaded by the backbone's init_cfg with
# prefix='backbone.': every encoder tensor loads, the decoder (`neck.*`) is ignored and the final
# norm `norm3` and the head start fresh (Pretrained init is partial by design and logs them).
_base_ = ['./_base_/convnextv2_fcmae-ft_32xb32-amp-coslr_in1k.py']

pretrained = 'pretrain/fcmae_convnextv2-tiny_in1k.pth'
model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.2, layer_decay_type='single',
                  init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=768, loss=dict(label_smooth_val=0.1)),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)

lr = 0.0008 * 1024 / 256
optim_wrapper = dict(optimizer=dict(lr=lr, weight_decay=0.05),
                     paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / lr, by_epoch=True, begin=40,
         end=300, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
