# CLIP training of ViTamin-L, the short schedule (vitamin_l_s1.28B_bs16k.yaml): global batch
# 16,384 (64 GPUs x 256), 78,126 iterations (OpenCLIP's count: ceil(1.28B / 16,384) = 78,125
# batches rounded up to a multiple of its 6 data-loader workers), otherwise as ViTamin-S; the L
# image tower and a 12-layer, 768-wide text tower (E = 768). Authors (MODEL_HUB.md:57): 73.9% IN
# zero-shot, 62.0 38-task average.
_base_ = ['./clip_vitamin-small_32xb256-amp-coslr-1.28b_datacomp1b.py']

model = dict(
    vision_backbone=dict(arch='large'),
    text_encoder=dict(embed_dims=768, proj_dims=768, num_layers=12, num_heads=12))
global_batch = 16384
max_iters = 78126  # 78,125 batches rounded up to a multiple of 6 workers
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 500, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=500, end=max_iters),
]
train_cfg = dict(max_iters=max_iters)
auto_scale_lr = dict(base_batch_size=global_batch)
