# Class-conditional ImageNet 256x256 generation in the SD VAE's latent space, as DiT-LLaMA trains
# (the official dit/train.py of Meituan-AutoML/VisionLLaMA, on facebookresearch/DiT): latents
# 4x32x32 (VAE factor 8, x 0.18215), AdamW lr 1e-4 constant, weight decay 0, global batch 256
# (8 GPUs x 32), EMA 0.9999, 400k iterations, fp16 mixed precision (the official GradScaler and
# autocast are on unless --use_fp32 is given; DiTLLaMA.md's commands pass --no-use_fp32, which
# leaves them on), each rank seeded with seed + rank (seed 0), as the official
# global_seed * world_size + rank.
# The DiT / SiT baseline configs train in fp32, as the upstream DiT / SiT train.py.
# The VAE is encoded on the fly here; *_in1k-latents-256px.py configs read latents pre-extracted by
# tools/generation/extract_latents.py instead.
# Two differences from the official pipeline remain (each config names them):
# - ADM's center_crop_arr (halving with a BOX filter while the short side is >= 512, then one
#   bicubic resize to a 256 short side, crop at floor offsets) is approximated by ResizeEdge
#   (pillow bicubic, antialiased) + CenterCrop (rounded offsets): the same crop up to resampling
#   and one-pixel rounding.
# - FID / IS / precision-recall are computed by torch-fidelity (the Inception network of ADM's
#   evaluator, not its TensorFlow code: numbers are close, not bit-identical); run ADM's
#   evaluator.py on the written .npz for numbers comparable with the papers'.
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
_base_ = ['../../_base_/default_runtime.py']

image_size = 256
num_classes = 1000

model = dict(
    type='ClassConditionalDiffusion',
    denoiser=dict(type='DiTLLaMA', arch='xl', patch_size=2, in_channels=4,
                  input_size=image_size // 8, num_classes=num_classes, class_dropout_prob=0.1,
                  learn_sigma=True, block_type='llama'),
    # DDPM: 1000 linear betas 1e-4..0.02, learned-range variance, noise MSE + VLB; 250 respaced
    # sampling steps without clipping the predicted x0 (the official sample_ddp.py)
    objective=dict(type='GaussianDiffusion', num_timesteps=1000, beta_schedule='linear',
                   beta_start=1e-4, beta_end=0.02, learn_sigma=True, sampling_steps=250,
                   clip_denoised=False),
    vae=dict(type='StableDiffusionVAE', path='data/pretrained/sd-vae-ft-ema', scale=0.18215),
    # guidance 1.5: Table 1's CFG column and sample_ddp.py's default; DiTLLaMA.md's example
    # command passes --cfg-scale 1.0, the column without guidance (--cfg-options model.cfg_scale=1.0)
    cfg_scale=1.5,
    guided_channels=3)  # the official samplers guide 3 of the 4 latent channels

# ADM's center_crop_arr (short side to 256, bicubic, center crop; approximated, see above) and a
# horizontal flip
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
    sampler=dict(type='ReproducibleSampler', sampler=dict(type='InfiniteSampler', shuffle=True)),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNet', data_root='data/imagenet', split='train',
                 pipeline=train_pipeline))

# tools/test.py draws 50k samples, each rank its share (no padding, no duplicates), and scores them
# against ADM's reference batch. The labels are uniform random, as the official sample_ddp.py draws
# them, but drawn once from seed 0 for the whole set, so they do not depend on the number of GPUs;
# test_dataloader.dataset.labels='balanced' gives exactly 50 per class (lower run-to-run variance,
# not the papers' sampling).
test_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ClassLabelDataset', num_samples=50000, num_classes=num_classes,
                 labels='uniform', seed=0))
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
    checkpoint=dict(by_epoch=False, interval=50000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
# seed + rank on each process (the official seeds rank r with global_seed * world_size + r, 0 + r)
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
# global batch 256: `--auto-scale-lr` keeps lr 1e-4 at other world sizes
auto_scale_lr = dict(base_batch_size=256, enable=False)
