# A small VQGAN tokenizer (a CPU shape: width 64 at every level, f = 4, no residual block in the
# encoder's levels, 256 codes of 16 dims)
# trained on 32x32 tiles of scikit-learn's two sample photos (SamplePhotoTiles: 416 train tiles,
# 104 validation tiles from unseen columns). Objective: L1 + L2 reconstruction + the quantizer's
# codebook/commitment loss (beta 0.25) -- our own choice, the official repo has no tokenizer
# training; no perceptual or GAN term. Score: reconstruction PSNR on the val tiles.
_base_ = ['../../_base_/default_runtime.py']

# Width 64 puts two channels in each of the 32 GroupNorm groups: at width 32 every group is one
# channel, normalised over the whole tile, which leaves a flat tile's colour nearly no way through.
arch = dict(resolution=32, hidden_channels=64, channel_mult=(1, 1, 1), num_res_blocks=0,
            z_channels=16, quantized_embed_dim=16, num_embeddings=256)
model = dict(
    type='VQGANAutoEncoder',
    tokenizer=dict(type='VQGANTokenizer', arch=arch),
    # codes unchosen for 10 steps move onto latents of the batch: without it 37 of the 256 codes
    # were in use after 300 steps
    restart_idle_codes=10,
    # pixels in [0, 1], RGB, as the released tokenizer takes them
    data_preprocessor=dict(type='mmengine.ImgDataPreprocessor', mean=[0., 0., 0.],
                           std=[255., 255., 255.], bgr_to_rgb=True))

data_root = 'data/sample_photos'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='ReproducibleSampler', sampler=dict(type='InfiniteSampler', shuffle=True)),
    dataset=dict(type='SamplePhotoTiles', data_root=data_root, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SamplePhotoTiles', data_root=data_root, split='val',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ReconstructionPSNR')
test_evaluator = val_evaluator

# The GroupNorms remove each group's mean and scale over the whole tile, so a flat tile's absolute
# colour is slow to learn, and flat tiles decide the mean per-tile PSNR: the schedule is more,
# smaller steps at a lower rate (1500 x 8 at 1e-3; 300 x 16 at 2e-3 reached 22.4 dB).
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.99)))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', eta_min=1e-4, by_epoch=False, begin=20, end=1500),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1500, val_interval=1500)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(by_epoch=False, interval=1500, max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=False)
