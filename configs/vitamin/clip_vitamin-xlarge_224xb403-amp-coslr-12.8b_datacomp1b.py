# CLIP training of ViTamin-XL (long_schedule/vitamin_xl_256_s12.8B_bs90k.yaml): the XL image tower
# (no position embedding, as timm and the released weights) trained at 224 (the config's
# force_image_size) with a 27-layer, 1152-wide text tower (E = 1152); global batch 90,272 (here 224
# GPUs x 403), 4,436 warm-up iterations, 141,840 iterations (OpenCLIP's count: 10 epochs of
# ceil(1.28B / 90,272) = 14,180 batches rounded up to a multiple of its 6 data-loader workers,
# 14,184), otherwise as the long ViTamin-L run. The authors report this run only after a hi-res
# fine-tune (+0.5B samples): 82.1% / 82.6% IN zero-shot at 256 / 384; their 336 model comes from a
# 40B-sample run with no config.
_base_ = ['./clip_vitamin-large_280xb322-amp-coslr-12.8b_datacomp1b.py']

model = dict(
    vision_backbone=dict(arch='xlarge'),
    text_encoder=dict(embed_dims=1152, proj_dims=1152, num_layers=27, num_heads=16))
global_batch = 90272
warmup_iters = 4436
max_iters = 141840  # 10 epochs x 14,184 batches (OpenCLIP's count)
train_dataloader = dict(batch_size=403)
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / warmup_iters, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
train_cfg = dict(max_iters=max_iters)
auto_scale_lr = dict(base_batch_size=global_batch)
