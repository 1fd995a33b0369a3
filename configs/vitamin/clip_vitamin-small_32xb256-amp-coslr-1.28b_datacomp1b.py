# CLIP training of ViTamin-S on DataComp-1B, the authors' short schedule
# (ViTamin/configs/short_schedule/vitamin_s_s1.28B_bs8k.yaml with OpenCLIP's training code in
# ViTamin/training/): 1.28B seen samples at a global batch of 8192 (here 32 GPUs x 256), AdamW lr
# 5e-4, betas (0.9, 0.98), eps 1e-6, weight decay 0.2 except on norms, biases and logit_scale
# (OpenCLIP's rule, main.py:321: no decay for tensors under 2-D and names with bn / ln / bias /
# logit_scale; position and token embeddings and text_projection are decayed), 500 linear warm-up
# iterations from lr/500 then cosine to 0, bf16 AMP, activation checkpointing, stochastic depth
# 0.1 in the image transformer, no gradient clipping, seed 0 offset by the rank (main.py:263).
# Iterations as OpenCLIP counts them (training/data.py:409-414, main.py:425): a pass over
# 1.28B samples is ceil(1.28B / 8192) = 156,250 batches rounded up to a multiple of the 6
# data-loader workers per GPU of the recipe, 156,252; the cosine ends there.
# Data: OpenCLIP's default train augmentation, RandomResizedCrop 224 with scale (0.9, 1.0),
# bicubic; OpenAI CLIP mean/std. ImageNet zero-shot validation (OpenAI's 1000 class names x 80
# templates, top-1/top-5) every 10k iterations and by `tools/test.py CONFIG CKPT`.
# Authors' README: 62.2% IN zero-shot at 1.28B samples; clip_vitamin-small_zeroshot-cls_in1k.py
# evaluates their released file.
_base_ = ['../_base_/default_runtime.py']

image_size = 224
context_length = 77
model = dict(
    type='ContrastiveCLIP',
    vision_backbone=dict(type='ViTamin', arch='small', img_size=image_size, drop_path_rate=0.1,
                         with_cp=True),
    text_encoder=dict(type='CLIPTextTransformer', embed_dims=384, proj_dims=384, num_layers=12,
                      num_heads=6, with_cp=True),
    context_length=context_length,
    # the authors' configs: local_loss + gather_with_grad (each rank's rows against the global
    # batch, a differentiable gather; DDP's average is then the full-batch gradient)
    local_loss=True,
    gather_with_grad=True,
    zero_shot=dict(classes='imagenet', templates='openai_imagenet'),
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255],
        std=[0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255],
        to_rgb=True))

# DataComp-1B as webdataset shards named as DataComp's download script writes them (8-digit ids,
# 10k samples a shard, .jpg + .txt); 1.28B samples = one pass over the first 128,001 shards, the
# authors' `{00000..128000}.tar` (adapt the pattern to your copy's names)
data_root = 'data/datacomp1b/shards'
train_shards = '{00000000..00128000}.tar'
num_samples = 1_280_000_000
train_pipeline = [
    dict(type='RandomResizedCrop', scale=image_size, crop_ratio_range=(0.9, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='TokenizeText', context_length=context_length),
    dict(type='PackInputs', algorithm_keys=['text_tokens']),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    sampler=None,  # streamed: the shards are split between ranks and workers
    # each worker's last batch of a pass is partial: dropped (as OpenCLIP's wds loader does), as
    # the loss gathers equal-size feature batches from every rank
    drop_last=True,
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='WebDatasetImageText', data_root=data_root, shards=train_shards,
                 num_samples=num_samples, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    collate_fn=dict(type='default_collate'),
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageNet', data_root='data/imagenet', split='val',
                 pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

global_batch = 8192  # the recipe's; keep num_gpus x batch_size equal to it
warmup_iters = 500
max_iters = 156252  # OpenCLIP's count: 156,250 batches rounded up to a multiple of 6 workers
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.2, betas=(0.9, 0.98), eps=1e-6),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0,
                       custom_keys={'logit_scale': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / warmup_iters, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10000)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=global_batch)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(by_epoch=False, interval=5000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
# OpenCLIP seeds every rank with seed + rank (main.py:263; the model is built under seed 0 and
# DDP copies rank 0's weights, as here)
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
