# Fine-tuning the FCMAE-pre-trained ConvNeXt V2-Femto on ImageNet-1k, 600 epochs
# (paper Table 9; top-1 78.5 after 800 pre-training epochs, Table 14). Official recipe
# (ConvNeXt-V2 TRAINING.md, main_finetune.py):
# AdamW (0.9, 0.999), lr = blr 0.0002 x 1024 / 256 = 0.0008 (32 GPUs x 32), wd 0.05,
# layer decay 'single' 0.9, 0 warm-up epochs then cosine to 1e-6 (x each group's
# layer-decay scale, as the official schedule), label smoothing 0.2, Mixup 0.3 / CutMix
# 0.3, drop path 0.0, head init x0.001, EMA 0.9999 (evaluated), AMP, RandAugment
# rand-m9-mstd0.5-inc1 + random erasing 0.25, test resize 256 / crop 224 bicubic (inherited).
# No weight decay on biases and 1-D parameters (norms, GRN gamma/beta): the constructor's default.
# Seed 0, offset by the rank (the official `--seed 0`, seeded `seed + rank`).
# mmpretrain's convnext-v2 config (made for converted weights) differs in: no layer decay, head
# init std .02, cosine to 1e-5, wd 0.3, label smoothing 0.1, drop path 0.1, no Mixup/CutMix.
# The FCMAE checkpoint (our `fcmae_convnextv2-*` run's epoch_N.pth, or an official one converted
# by tools/model_converters/convnextv2_official.py) is loaded by the backbone's init_cfg with
# prefix='backbone.': every encoder tensor loads, the decoder (`neck.*`) is ignored and the final
# norm `norm3` and the head start fresh (Pretrained init is partial by design and logs them).
# The same recipe as convnextv2-atto except the values below.
_base_ = ['./convnextv2-atto_fcmae-pre_32xb32-amp-coslr-600e_in1k.py']

pretrained = 'pretrain/fcmae_convnextv2-femto_in1k.pth'
model = dict(
    backbone=dict(arch='femto', drop_path_rate=0.0, init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=384),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.3), dict(type='CutMix', alpha=0.3)]),
)
optim_wrapper = dict(optimizer=dict(weight_decay=0.05))
