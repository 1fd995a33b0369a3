# A tiny class-conditional SiT-LLaMA trained in pixel space (no VAE, in_channels=3) on scikit-learn's
# handwritten digits at 16x16, through the stock Runner: the flow-matching objective of the ImageNet
# SiT configs (linear interpolant, velocity prediction, Euler-Maruyama SDE sampling) at a toy model
# size, lr, EMA and step count. tests/tools/test_dit_learning.py trains it, samples 10 images per
# class with guidance through tools/test.py, and labels them with a classifier of the real digits.
#   python tools/train.py configs/dit_llama/sit_llama-tiny-p4_1xb64-1250it_digits-16px.py
#   python tools/test.py  configs/dit_llama/sit_llama-tiny-p4_1xb64-1250it_digits-16px.py CKPT
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)

image_size = 16
data_root = 'data/digits_16px'  # DigitsDataset writes the 16x16 PNGs there once

model = dict(
    type='ClassConditionalDiffusion',
    denoiser=dict(type='DiTLLaMA', arch=dict(embed_dims=96, depth=3, num_heads=4),
                  patch_size=4, in_channels=3, input_size=image_size, num_classes=10,
                  class_dropout_prob=0.1, learn_sigma=True, block_type='llama'),
    objective=dict(type='FlowMatching', path='linear', prediction='velocity',
                   sampler=dict(mode='sde', num_steps=100, diffusion_form='sigma',
                                diffusion_norm=1.0, last_step='mean', last_step_size=0.04)),
    vae=None,
    cfg_scale=4.0,
    guided_channels=None)  # pixel space: guide all three channels

train_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='DigitsDataset', data_root=data_root, split='train', image_size=image_size,
                 pipeline=train_pipeline))

# 10 samples per class
test_dataloader = dict(
    batch_size=100,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ClassLabelDataset', num_samples=100, num_classes=10))
test_evaluator = dict(type='GenerationMetric', out_dir=None, reference=None)
test_cfg = dict(type='TestLoop')
val_dataloader = None
val_evaluator = None
val_cfg = None

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1250, val_interval=1250)
# EMA over the last ~100 iterations (the ImageNet configs' 0.9999 is for 400k iterations)
custom_hooks = [dict(type='EMAHook', momentum=1e-2, update_buffers=True, priority='ABOVE_NORMAL')]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=200),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1250, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0, deterministic=False)
