# FCMAE pre-training on ImageNet-1k, shared by every size (paper Table 8; official
# ConvNeXt-V2 main_pretrain.py / TRAINING.md). The size files set `model.backbone.arch` and the
# decoder's `in_channels` (the last stage's width) only.
# - model: sparse ConvNeXt V2 encoder (60% of the 32x32-px cells hidden, no drop path), decoder =
#   1x1 proj to 512 + mask token + one ConvNeXt V2 block + 1x1 pred of 32*32*3, normalised-pixel
#   MSE on the hidden cells (mmpretrain's MAEPretrainHead / PixelReconstructionLoss).
# - AdamW, betas (0.9, 0.95), wd 0.05; lr = blr 1.5e-4 x 4096 / 256 = 2.4e-3 for the released
#   total batch 4096 = 8 GPUs x 64 images x 8 accumulated steps (the official single-node command;
#   64 GPUs x 64 without accumulation is the same optimizer step).
# - weight decay as the official timm `add_weight_decay`: none for biases and 1-D parameters
#   (LayerNorm), but the official sparse GRN gamma/beta are (1, C) tensors and *are* decayed; ours
#   are (C,), so `.grn.` is decayed explicitly. The mask token (1, 512, 1, 1) is decayed too.
# - 40 warm-up epochs (linear, per iteration), then half-cycle cosine to 0 at epoch 800. The
#   warm-up starts at 1e-9 x lr: the official schedule starts at 0, which mmengine's LinearLR (a
#   multiplicative update) cannot start from.
# - seed 0, offset by the rank (the official `--seed 0`, seeded `seed + rank`).
# - RandomResizedCrop(224, scale (0.2, 1.0), bicubic) + horizontal flip, ImageNet normalisation
#   (mmpretrain's MAE pipeline); images must be square multiples of 32.
# - fp32: the official pre-training runs no autocast.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs512_mae.py',
    '../../_base_/default_runtime.py',
]

model = dict(
    type='FCMAE',
    # GRN statistics per sample over the visible cells, as the JAX code that produced the paper's
    # numbers (the official PyTorch code's MinkowskiGRN pools the whole batch: grn_batch_stat=True)
    backbone=dict(type='SparseConvNeXtV2', arch='tiny', mask_ratio=0.6, drop_path_rate=0.,
                  grn_batch_stat=False),
    neck=dict(type='FCMAEDecoder', in_channels=768, embed_dims=512, num_layers=1, patch_size=32),
    head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=32,
              loss=dict(type='PixelReconstructionLoss', criterion='L2')))

# the stock dataset base defines collate_fn (mmengine adds `_scope_` to it): replace it whole
train_dataloader = dict(batch_size=64, drop_last=True,
                        collate_fn=dict(_delete_=True, type='default_collate'),
                        sampler=dict(_delete_=True, type='ReproducibleSampler',
                                     sampler=dict(type='DefaultSampler', shuffle=True)))

optim_wrapper = dict(
    type='OptimWrapper',
    accumulative_counts=8,
    optimizer=dict(type='AdamW', lr=1.5e-4 * 4096 / 256, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(bias_decay_mult=0., flat_decay_mult=0.,
                       custom_keys={'.grn.': dict(decay_mult=1.)}))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=760, eta_min=0., by_epoch=True, begin=40, end=800,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=800)
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
# `--auto-scale-lr` compares GPUs x batch_size (accumulation not counted) with this: 8 x 64
auto_scale_lr = dict(base_batch_size=512)
