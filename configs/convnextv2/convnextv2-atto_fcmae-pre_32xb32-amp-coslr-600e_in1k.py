# Fine-tuning the FCMAE-pre-trained ConvNeXt V2-Atto on ImageNet-1k, 600 epochs
# (paper Table 9; top-1 76.7 after 800 pre-training epochs, Table 14). Official recipe
# (ConvNeXt-V2 TRAINING.md, main_finetune.py):
# AdamW (0.9, 0.999), lr = blr 0.0002 x 1024 / 256 = 0.0008 (32 GPUs x 32), wd 0.3,
# layer decay 'single' 0.9, 0 warm-up epochs then cosine to 1e-6 (x each group's
# layer-decay scale, as the official schedule), label smoothing 0.2, Mixup 0.0 / CutMix
# 0.0, drop path 0.1, head init x0.001, EMA 0.9999 (evaluated), AMP, RandAugment
# rand-m9-mstd0.5-inc1 + random erasing 0.25, test resize 256 / crop 224 bicubic (inherited).
# No weight decay on biases and 1-D parameters (norms, GRN gamma/beta): the constructor's default.
# Seed 0, offset by the rank (the official `--seed 0`, seeded `seed + rank`).
# mmpretrain's convnext-v2 config (made for converted weights) differs in: no layer decay, head
# init std .02, cosine to 1e-5.
# The FCMAE checkpoint (our `fcmae_convnextv2-*` run's epoch_N.pth, or an official one converted
# by tools/model_converters/convnextv2_official.py) is loaded by the backbone's init_cfg with
# prefix='backbone.': every encoder tensor loads, the decoder (`neck.*`) is ignored and the final
# norm `norm3` and the head start fresh (Pretrained init is partial by design and logs them).
_base_ = ['./_base_/convnextv2_fcmae-ft_32xb32-amp-coslr_in1k.py']

pretrained = 'pretrain/fcmae_convnextv2-atto_in1k.pth'
model = dict(
    backbone=dict(arch='atto', drop_path_rate=0.1, layer_decay_type='single',
                  init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=320, loss=dict(label_smooth_val=0.2)),
    train_cfg=dict(augments=None),
)

lr = 0.0002 * 1024 / 256
optim_wrapper = dict(optimizer=dict(lr=lr, weight_decay=0.3),
                     paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / lr, by_epoch=True, begin=0,
         end=600, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=600, val_interval=1)
