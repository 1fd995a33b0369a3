# LVM on a toy visual language: scikit-learn's digits in counting order (d, d+1, ..., mod 10), ten
# 16x16 images per sentence, each 4x4 = 16 codes (of 32) of a small VQGAN trained on the digits
# (configs/lvm/vqgan/vqgan_tiny-f4_1xb32-300it_digits.py), BOS/EOS around every sentence and the
# stream packed into windows of 161 + 1 tokens as EasyLM does. The held-out perplexity (val digits,
# unseen instances) falls well below the unigram perplexity of the same tokens because the model
# learns that the next image is the next number; tests/tools/test_lvm_learning.py runs it end to end
# (tokenizer, tools/lvm/tokenize_sentences.py, this config, tools/test.py, tools/lvm/generate.py).
#
# Data (paths set by the test or with --cfg-options):
#   train_dataloader.dataset.data_root / val / test: shards of tools/lvm/tokenize_sentences.py
#   model.tokenizer.init_cfg.checkpoint: the trained tokenizer (for generate.py)
_base_ = ['../_base_/default_runtime.py']

num_codes = 32
image_size = 16  # generate.py resizes prompt images to this
context_length = 161
tokenizer = dict(
    type='VQGANTokenizer',
    arch=dict(hidden_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1, z_channels=16,
              quantized_embed_dim=16, num_embeddings=num_codes, resolution=image_size),
    init_cfg=dict(type='Pretrained', checkpoint='work_dirs/vqgan_digits/iter_300.pth',
                  prefix='tokenizer.'))

model = dict(
    type='LVM',
    backbone=dict(type='LLaMADecoder', vocab_size=num_codes + 100,
                  arch=dict(embed_dims=128, feedforward_channels=352, num_layers=3,
                            num_heads=4)),
    tokenizer=tokenizer,
    num_codes=num_codes, bos_id=num_codes, eos_id=num_codes + 1, pad_id=num_codes + 2,
    log_accuracy=True)

shard = dict(type='PackedTokenDataset', context_length=context_length, bos_id=num_codes,
             eos_id=num_codes + 1, vocab_size=num_codes + 100)
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type='ReproducibleSampler', sampler=dict(type='InfiniteSampler', shuffle=True)),
    collate_fn=dict(type='default_collate'),
    dataset=dict(**shard, data_root='data/digits_counting/train_tokens'))
val_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(**shard, data_root='data/digits_counting/val_tokens'))
test_dataloader = val_dataloader
val_evaluator = dict(type='Perplexity')
test_evaluator = val_evaluator

# the official optimiser (AdamW, betas 0.9/0.95, weight decay 0.1 on every parameter, clip 1.0) at
# a toy-scale lr and schedule
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.95), weight_decay=0.1),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', eta_min=2e-4, by_epoch=False, begin=50, end=400),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=400, val_interval=400)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(by_epoch=False, interval=400, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0, deterministic=False)
