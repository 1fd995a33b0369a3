# MAE pre-training of the plain VisionLLaMA-B on ImageNet-1k, 800 epochs (the official mae_lama-base
# config; fine-tuned: 84.0 top-1, linear probe 69.7, paper Table 3). mmpretrain's MAE recipe (mask
# ratio 0.75, stock MAEPretrainDecoder 512-d x 8, normalised-pixel loss, AdamW lr 1.5e-4 x 4096/256,
# betas (0.9, 0.95), wd 0.05, 40 warm-up epochs, cosine, AMP) with the encoder swapped for
# MAEVisionLLaMA. arch='mae-base' is the released width (SwiGLU hidden 8192 with biases:
# 255.7M-param encoder), which Table 3 used; arch='base' is the LLaMA-rule width (hidden 2048, 85.7M
# encoder). Visible tokens are rotated at their original grid positions; no absolute position
# embedding; the class token is prepended after the encoder for the stock decoder, as the fork's
# MAELLaMA.
_base_ = ['mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
# the runtime entries of configs/_base_/default_runtime.py (a chain that starts at a complete
# stock config cannot inherit it as well: mmengine allows a key in one base only)
runner_type = 'CheckedRunner'

model = dict(
    backbone=dict(_delete_=True, type='MAEVisionLLaMA', arch='mae-base', img_size=224,
                  patch_size=16, mask_ratio=0.75))

# the stock dataset base defines collate_fn (mmengine adds `_scope_` to it): replace it whole
train_dataloader = dict(
    sampler=dict(_delete_=True, type='ReproducibleSampler',
                 sampler=dict(type='DefaultSampler', shuffle=True)),
    collate_fn=dict(_delete_=True, type='default_collate'))

# stop at the first NaN/inf loss or gradient norm; never save NaN weights or a NaN 'best'
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     nonfinite_check=dict(type='NonFiniteCheckHook'),
                     reproducibility=dict(type='ReproducibleRandomnessHook'))
