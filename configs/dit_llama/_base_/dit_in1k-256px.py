# Class-conditional ImageNet 256x256 generation in the SD VAE's latent space, as DiT / DiT-LLaMA
# train (spec visionllama §7; dit/train.py): latents 4x32x32 (VAE factor 8, x 0.18215), AdamW lr 1e-4
# constant, weight decay 0, global batch 256 (8 GPUs x 32), EMA 0.9999, 400k iterations, fp16 AMP.
# The VAE is encoded on the fly here; *_in1k-latents-256px.py configs read latents pre-extracted by
# tools/generation/extract_latents.py instead.
#
# Files this config expects (nothing is downloaded):
#   data/imagenet/train/...                                ImageNet's training set, mmpretrain layout
#   data/pretrained/sd-vae-ft-ema/                         the diffusers AutoencoderKL directory
#                                                          (huggingface.co/stabilityai/sd-vae-ft-ema)
#   data/pretrained/weights-inception-2015-12-05-6726825d.pth   torch-fidelity's Inception-v3: the
#                                                          features of FID, IS and precision /
#                                                          recall (prc_features='inception', as
#                                                          ADM's evaluator; no VGG file needed)
#   data/imagenet/VIRTUAL_imagenet256_labeled.npz          ADM's reference batch (FID, P/R)
# A missing Inception file or reference only skips those metrics (with a warning): the samples
# (PNGs and the ADM .npz under {work_dir}/samples) are always written.
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)

image_size = 256
num_classes = 1000

model = dict(
    type='ClassConditionalDiffusion',
    denoiser=dict(type='DiTLLaMA', arch='xl', patch_size=2, in_channels=4,
                  input_size=image_size // 8, num_classes=num_classes, class_dropout_prob=0.1,
                  learn_sigma=True, block_type='llama'),
    # DDPM: 1000 linear betas 1e-4..0.02, learned-range variance, noise MSE + VLB; 250 steps
    objective=dict(type='GaussianDiffusion', num_timesteps=1000, beta_schedule='linear',
                   learn_sigma=True, sampling_steps=250),
    vae=dict(type='StableDiffusionVAE', path='data/pretrained/sd-vae-ft-ema', scale=0.18215),
    # the paper's FIDs use guidance 1.5 (the official sample command's default is 1.0)
    cfg_scale=1.5,
    guided_channels=3)  # the official samplers guide 3 of the 4 latent channels

# ADM's center_crop_arr (short side to 256, bicubic, center crop) and a horizontal flip
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNet', data_root='data/imagenet', split='train',
                 pipeline=train_pipeline))

# tools/test.py draws 50k samples, 50 per class, each rank its share (no padding, no duplicates),
# and scores them against ADM's reference batch
test_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ClassLabelDataset', num_samples=50000, num_classes=num_classes))
test_evaluator = dict(
    type='GenerationMetric',
    out_dir=None,  # tools/test.py: {work_dir}/samples
    reference='data/imagenet/VIRTUAL_imagenet256_labeled.npz',
    inception_weights='data/pretrained/weights-inception-2015-12-05-6726825d.pth')
test_cfg = dict(type='TestLoop')
val_dataloader = None
val_evaluator = None
val_cfg = None

# AdamW(lr=1e-4, weight_decay=0) constant; fp16 mixed precision as the official train.py
optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.))
param_scheduler = []
train_cfg = dict(type='IterBasedTrainLoop', max_iters=400000, val_interval=400000)

# EMA of the denoiser, decay 0.9999 (mmengine's momentum = 1 - decay); tools/test.py samples with it
custom_hooks = [dict(type='EMAHook', momentum=1e-4, update_buffers=True, priority='ABOVE_NORMAL')]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=50000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0, deterministic=False)
# global batch 256: `--auto-scale-lr` keeps lr 1e-4 at other world sizes
auto_scale_lr = dict(base_batch_size=256, enable=False)
