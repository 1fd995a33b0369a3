# A tiny class-conditional DiT-LLaMA trained in pixel space (no VAE, in_channels=3) on scikit-learn's
# handwritten digits at their native 8x8, through the stock Runner: the DDPM objective of the ImageNet
# configs (1000 linear betas, learned-range variance, noise MSE + VLB) at a toy model size, lr and EMA.
# tests/tools/test_dit_learning.py trains it, samples 10 images per class with guidance through
# tools/test.py, and labels them with a classifier trained on the real digits.
#   python tools/train.py configs/dit_llama/dit_llama-tiny-p2_1xb64-2000it_digits-8px.py
#   python tools/test.py  configs/dit_llama/dit_llama-tiny-p2_1xb64-2000it_digits-8px.py CKPT
# Why 8x8 and not 16x16 (the SiT toy's size): the noise-prediction loss weighs errors in the predicted
# image by the signal-to-noise ratio, so at high noise, where a sample's class is decided, it hardly
# trains. At 16x16 the same pixels carry a 4x lower SNR per digit, and the class is decided even later:
# measured here (96 wide, lr 2e-3), at 16x16 (patch 4) 13% / 17% / 21% of the samples are labelled
# as their class after 1k / 2k / 4k iterations, at 8x8 (patch 2) 19% / 86% / 97% after 1k / 2k / 3k;
# 64 wide: 14% / 59% / 99% after 1k / 2k / 3k at lr 3e-3, 42% / 73% after 1.5k / 2k at lr 5e-3 (this
# config; raw weights in a plain loop, 100 samples, guidance 4).
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/digits.py']

image_size = 8
data_root = 'data/digits_8px'  # DigitsDataset writes the 8x8 PNGs there once

model = dict(
    type='ClassConditionalDiffusion',
    denoiser=dict(type='DiTLLaMA', arch=dict(embed_dims=64, num_layers=3, num_heads=4),
                  patch_size=2, in_channels=3, input_size=image_size, num_classes=10,
                  class_dropout_prob=0.1, learn_sigma=True, block_type='llama'),
    objective=dict(type='GaussianDiffusion', num_timesteps=1000, beta_schedule='linear',
                   learn_sigma=True, sampling_steps=100),
    vae=None,
    cfg_scale=4.0,
    guided_channels=None)  # pixel space: guide all three channels

train_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    sampler=dict(sampler=dict(type='InfiniteSampler')),
    dataset=dict(data_root=data_root, image_size=image_size, pipeline=train_pipeline))

# exactly 10 samples per class (balanced labels: the learning tests score each class)
test_dataloader = dict(
    _delete_=True,
    batch_size=100,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ClassLabelDataset', num_samples=100, num_classes=10, labels='balanced'))
test_evaluator = dict(_delete_=True, type='GenerationMetric', out_dir=None, reference=None)
test_cfg = dict(type='TestLoop')
val_dataloader = None
val_evaluator = None
val_cfg = None

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=5e-3, betas=(0.9, 0.999), weight_decay=0.),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2000, val_interval=2000)
# EMA over the last ~100 iterations (the ImageNet configs' 0.9999 is for 400k iterations)
custom_hooks = [dict(type='EMAHook', momentum=1e-2, update_buffers=True, priority='ABOVE_NORMAL')]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=200),
    checkpoint=dict(by_epoch=False, interval=2000, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0, deterministic=False)
