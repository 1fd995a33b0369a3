# CLIP training of ViTamin-L, the long schedule behind the released ViTamin-L (80.8% IN zero-shot at
# 224; long_schedule/vitamin_l_224_s12.8B_bs90k.yaml): 12.8B seen samples (10 epochs of 1.28B over
# all of DataComp-1B) at a global batch of 90,160 (here 280 GPUs x 322; the authors' config gives
# only the global batch), lr 2e-3, betas (0.9, 0.95), 782 warm-up iterations, and a stronger
# augmentation: RandomResizedCrop scale (0.4, 1.0), ColorJitter(0.32, 0.32, 0.32, 0.08) with p 0.8,
# grayscale with p 0.2. 142,020 iterations, OpenCLIP's count: an epoch of 1.28B samples is
# ceil(1.28B / 90,160) = 14,197 batches rounded up to a multiple of its 6 data-loader workers,
# 14,202, x 10 epochs. The hi-res models are fine-tuned from it (the *_ft256/336/384.yaml configs:
# lr 1e-5 constant, no warm-up, weight decay 0).
# Loss as the authors ran it (inherited from the ViTamin-S config): OpenCLIP's --local-loss
# --gather-with-grad, each rank scores its 322 images / captions against the global batch
# (322 x 90,160 logits; the full 90,160^2 matrix, 32.5 GB per fp32 copy, would not fit a GPU).
_base_ = ['./clip_vitamin-large_64xb256-amp-coslr-1.28b_datacomp1b.py']

# all 140,090 shards of DataComp-1B (~1.4B samples), read again and again until max_iters. The
# authors count 10 epochs of 1.28B samples; num_samples (what len() reports, used by the logger's
# end-of-epoch check and torch's over-length warning) is the whole run's 12.8B
train_shards = '{00000000..00140089}.tar'
num_samples = 12_800_000_000
global_batch = 90160
warmup_iters = 782
max_iters = 142020  # 10 epochs x 14,202 batches (OpenCLIP's count)
train_pipeline = [
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.4, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomApply', prob=0.8, transforms=[
        dict(type='ColorJitter', brightness=0.32, contrast=0.32, saturation=0.32, hue=0.08)]),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True),
    dict(type='TokenizeText', context_length=77),
    dict(type='PackInputs', algorithm_keys=['text_tokens']),
]
train_dataloader = dict(
    batch_size=322,
    dataset=dict(shards=train_shards, num_samples=num_samples, pipeline=train_pipeline))
optim_wrapper = dict(optimizer=dict(lr=2e-3, betas=(0.9, 0.95)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / warmup_iters, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
train_cfg = dict(max_iters=max_iters)
auto_scale_lr = dict(base_batch_size=global_batch)
