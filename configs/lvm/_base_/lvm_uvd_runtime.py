# LVM pre-training recipe shared by every size (spec §3.3, the README 7B example with EasyLM's
# defaults; spec §6.3 for the mapping onto mmengine). A size config adds the decoder arch, the
# precision / parallelism (DDP + bf16 AmpOptimWrapper below 1B, ./lvm_fsdp.py from 1B) and, where
# memory demands it, activation checkpointing.
#
# Data: pre-tokenized shards (spec §6.2 mode B) written by tools/lvm/tokenize_sentences.py, the
# sentences shuffled when the shard is written (the terashuf step, spec §2.2). Item i of
# PackedTokenDataset is the window stream[i * 4096 : i * 4096 + 4097], EasyLM's packing (spec §2.3).
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)

# spec §3.2: 8192 VQ codes + 100 reserved ids; our BOS/EOS/PAD sit just above the codes (§2.2)
num_codes = 8192
vocab_size = 8292
context_length = 4096  # spec §3.3: seq_length 4096

model = dict(
    type='LVM',
    backbone=dict(type='LLaMADecoder', vocab_size=vocab_size),  # arch: set by each size config
    num_codes=num_codes, bos_id=num_codes, eos_id=num_codes + 1, pad_id=num_codes + 2,
    # spec §3.3: NLL averaged within each row, then over rows (equal to the token mean on packed
    # windows, which have no padding); token accuracy is logged too
    loss_norm='row',
    log_accuracy=True)

token_windows = dict(type='PackedTokenDataset', context_length=context_length,
                     bos_id=num_codes, eos_id=num_codes + 1, vocab_size=vocab_size)
# 4 windows per GPU x 8 GPUs = 32 sequences of 4096 tokens per micro-step, the official global
# batch (spec §3.3; the name's NxbB). shuffle=False reads the (sentence-shuffled) stream in order as
# EasyLM does: with W ranks, DefaultSampler gives rank r the windows r, r + W, ..., so each global
# micro-batch is 32 consecutive windows.
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(**token_windows, data_root='data/uvd/tokens'))
val_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(**token_windows, data_root='data/uvd/val_tokens'))
test_dataloader = val_dataloader
val_evaluator = dict(type='Perplexity')
test_evaluator = val_evaluator

# spec §3.3 / §6.3: AdamW (beta1 0.9, beta2 0.95, eps 1e-8 as optax's), weight decay 0.1 on EVERY
# parameter: EasyLM's decay mask excludes nothing, so norms and embeddings decay too and there is
# deliberately no paramwise_cfg (norm_decay_mult=0 would be a deviation). Gradient clipping at
# global norm 1.0. 4 micro-steps per update (optax MultiSteps): mmengine averages the loss over
# them (OptimWrapper.accumulative_counts) as MultiSteps averages the gradients.
accumulative_counts = 4
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1.5e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1),
    clip_grad=dict(max_norm=1.0),
    accumulative_counts=accumulative_counts)

# LR (spec §3.3): optax warmup_cosine_decay_schedule counted in *updates* u (the schedule sits
# inside MultiSteps): 0 -> 1.5e-4 linearly over u = 0..8000, cosine to 3e-5 at u = 288000 (counted
# from 0, warm-up included), 3e-5 after.
# mmengine counts *iterations* (micro-steps): ParamSchedulerHook.after_train_iter steps every
# iter-based scheduler after every iteration, accumulating or not, and OptimWrapper.should_update
# applies update u at iteration 4u + 3 (the 4th micro-step of its window) with the LR of that
# iteration. So the official schedule is stretched by 4 and delayed by 3 iterations: iteration
# 4u + 3 carries lr(u) exactly; iterations 0-2 (accumulation only, nothing is updated) hold the
# warm-up start. Mind mmengine's ends: LinearLR reaches end_factor at iteration end - 1, and the
# cosine reaches eta_min at begin + T_max, so its end is one past that.
# ~0 stands for the official 0 (mmengine's chained LinearLR divides by its start factor).
lr_start_factor = 1e-8
warmup_updates = 8000
decay_updates = 288000
_delay = accumulative_counts - 1  # iterations before the first update
_warmup_end = _delay + accumulative_counts * warmup_updates  # iteration of update 8000: 32003
_decay_end = _delay + accumulative_counts * decay_updates  # iteration of update 288000: 1152003
param_scheduler = [
    # iterations 0..2 at ~0; restored at iteration 3, where LinearLR takes over
    dict(type='ConstantLR', factor=lr_start_factor, by_epoch=False, begin=0,
         end=accumulative_counts),
    dict(type='LinearLR', start_factor=lr_start_factor, end_factor=1.0, by_epoch=False,
         begin=_delay, end=_warmup_end + 1),
    dict(type='CosineAnnealingLR', eta_min=3e-5, by_epoch=False, begin=_warmup_end,
         end=_decay_end + 1, T_max=_decay_end - _warmup_end),
]

# spec §3.3: total_steps 400000 counts micro-steps, i.e. 100K updates (52B tokens); the run ends
# before the cosine's end (update 288000), as the official example does. Validation every 10000
# iterations is ours (the official run reports none).
train_cfg = dict(type='IterBasedTrainLoop', max_iters=400000, val_interval=10000)
val_cfg = dict()
test_cfg = dict()

# spec §3.3: a checkpoint every 1000 steps (EasyLM overwrites one streaming checkpoint; its
# milestones every 2000 steps are not kept here: set max_keep_ckpts=-1 to keep every checkpoint)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)  # an iteration-based run
