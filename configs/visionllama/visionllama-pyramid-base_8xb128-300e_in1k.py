# Pyramid VisionLLaMA-B, supervised on ImageNet-1k for 300 epochs (paper Table 2: 83.2 top-1;
# Twins-SVT-B 83.2). The recipe is Twins-SVT's / DeiT's, which the official code runs
# (deit/ImageNet1k_SFT.md: 8 GPUs x 128, --no-repeated-aug, drop path 0.2 / 0.3 / 0.5 for S / B /
# L), taken from mmpretrain's stock Twins config: AdamW lr 5e-4 x batch / 512 = 1e-3 at batch 1024,
# wd 0.05 (none on norms, biases, LayerScale), 5 warm-up epochs from 1e-6, cosine to 1e-5,
# RandAugment (rand-m9-mstd0.5-inc1), Mixup 0.8 / CutMix 1.0, label smoothing 0.1, random erasing
# 0.25, no repeated augmentation (ImageNet1k_SFT.md --no-repeated-aug), test resize 256 -> centre
# crop 224. Changes to the stock Twins config, each to follow the official code: no gradient
# clipping (DeiT's main.py default; mmpretrain's Twins config clips at 5.0), the head initialised
# like every other Linear (trunc-normal 0.02), bf16 autocast (engine.py autocasts to bf16 where the
# GPU supports it, as on A100/H100) and seed 0 (main.py --seed 0, + rank). The released checkpoints
# (pllama_wols_*) convert with tools/model_converters/vision_llama_official.py; this config's
# defaults reproduce them: LayerScale 1e-4 (although the name says "wols"), GSA key positions of the
# released code (gsa_key_pos='official'; 'paper' puts each pooled key at the centre of its window),
# no auto-scale (ImageNet is trained and tested at 224), and the head's double LayerNorm
# (out_type='avg_featmap').
_base_ = ['mmpretrain::twins/twins-svt-base_8xb128_in1k.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
# the runtime entries of configs/_base_/default_runtime.py (a chain that starts at a complete
# stock config cannot inherit it as well: mmengine allows a key in one base only)
runner_type = 'CheckedRunner'

model = dict(
    backbone=dict(
        _delete_=True,
        type='PyramidVisionLLaMA',
        arch='base',
        img_size=224,
        out_indices=(3, ),
        out_type='avg_featmap',  # norm(mean(norm(tokens))), as the official head
        gsa_key_pos='official',
        auto_scale=False,
        layer_scale_init_value=1e-4,
        drop_path_rate=0.3),
    neck=None,
    head=dict(
        in_channels=768,
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)))

optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16', clip_grad=None)
randomness = dict(seed=0, deterministic=False)

# The stock bases define no collate_fn, so there is no inherited `_scope_` to drop here: a
# `_delete_=True` would stay in the dict (nothing to delete) and reach default_collate as a keyword.
train_dataloader = dict(
    sampler=dict(_delete_=True, type='ReproducibleSampler',
                 sampler=dict(type='DefaultSampler', shuffle=True)),
    collate_fn=dict(type='default_collate'))
val_dataloader = dict(collate_fn=dict(type='default_collate'))
test_dataloader = val_dataloader

# stop at the first NaN/inf loss or gradient norm; never save NaN weights or a NaN 'best'
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     nonfinite_check=dict(type='NonFiniteCheckHook'),
                     reproducibility=dict(type='ReproducibleRandomnessHook'))
