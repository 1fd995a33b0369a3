# CLIP training of ViTamin-L2 (long_schedule/vitamin_l2_224_s12.8B_bs90k.yaml): the L image tower
# with a 24-layer, 1024-wide text tower (E = 1024) and 4,436 warm-up iterations (about 400M
# samples); otherwise as the long ViTamin-L run. Released: 80.9% IN zero-shot at 224.
_base_ = ['./clip_vitamin-large_280xb322-amp-coslr-12.8b_datacomp1b.py']

model = dict(text_encoder=dict(embed_dims=1024, proj_dims=1024, num_layers=24, num_heads=16))
warmup_iters = 4436
max_iters = 142020  # as the ViTamin-L long run
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / warmup_iters, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
