# Linear probing of the MAE-pre-trained VisionLLaMA-B (paper Table 3: 69.7 after 800 epochs, 71.7
# after 1600), as the official lama-base-p16_8xb2048-linear-coslr-800-90e_in1k.py: frozen backbone,
# GAP through a frozen, never-trained LayerNorm (ln2: a plain standardisation), BatchNorm neck
# without affine, linear head; LARS lr 6.4 at batch 16384, 10 warm-up epochs, cosine, 90 epochs,
# fp16 AMP (inherited).
_base_ = ['mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
# the runtime entries of configs/_base_/default_runtime.py (a chain that starts at a complete
# stock config cannot inherit it as well: mmengine allows a key in one base only)
runner_type = 'CheckedRunner'

pretrained = 'pretrain/visionllama-base-mae-800e.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionLLaMA',
        arch='mae-base',
        ffn_bias=True,
        img_size=224,
        patch_size=16,
        with_cls_token=False,
        out_type='avg_featmap',
        final_norm=False,
        frozen_stages=12,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')))

# no collate_fn in the stock bases (see the fine-tuning config): restated without `_delete_`
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
