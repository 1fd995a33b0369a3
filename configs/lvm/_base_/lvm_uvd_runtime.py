# LVM pre-training recipe shared by every size: the official training example
# (github.com/ytongbai/LVM README.md:57-86, written for vqlm_7b) with EasyLM's defaults for what it
# leaves out (EasyLM/optimizers.py, EasyLM/models/llama/llama_train.py). A size config adds the
# decoder arch, the precision / parallelism (DDP + bf16 AmpOptimWrapper below 1B, ./lvm_fsdp.py
# from 1B) and, where memory demands it, activation checkpointing. configs/lvm/recipes.yml lists
# every field with its official source; tools/analysis_tools/check_recipe.py lvm compares them.
#
# Data: pre-tokenized shards written by tools/lvm/tokenize_sentences.py, the sentences shuffled
# when the shard is written (the official shuffle is a one-off `terashuf` of the tokenized JSONL,
# DATASET.md:57-60). Item i of PackedTokenDataset is the window stream[i * 4096 : i * 4096 + 4097],
# EasyLM's packing (EasyLM/data.py:325-375: input = stream[0:N], target = stream[1:N+1], sentences
# cross rows, no attention or position reset).
_base_ = ['../../_base_/default_runtime.py']

# 8192 VQ codes + 100 reserved ids (EasyLM/models/llama/llama_model.py:41); the official BOS/EOS
# ids are not published: ours sit just above the codes
num_codes = 8192
vocab_size = 8292
context_length = 4096  # README.md:78, seq_length 4096

model = dict(
    type='LVM',
    # the decoder of LLAMA_STANDARD_CONFIGS (llama_model.py:39-229): N(0, 0.02) init of every
    # Linear and the embedding (L501-525, L698-714, L1052, L1129), RMSNorm eps 1e-6, RoPE theta
    # 10000 (L451); arch: set by each size config
    backbone=dict(type='LLaMADecoder', vocab_size=vocab_size, init_std=0.02, norm_eps=1e-6,
                  rope_theta=10000.),
    num_codes=num_codes, bos_id=num_codes, eos_id=num_codes + 1, pad_id=num_codes + 2,
    # EasyLM/jax_utils.py:256-278: NLL averaged within each row, then over rows (equal to the
    # token mean on packed windows, which have no padding); token accuracy is logged too
    loss_norm='row',
    log_accuracy=True)

token_windows = dict(type='PackedTokenDataset', context_length=context_length,
                     bos_id=num_codes, eos_id=num_codes + 1, vocab_size=vocab_size)
# 4 windows per GPU x 8 GPUs = 32 sequences of 4096 tokens per micro-step, the official global
# batch (README.md:79, batch_size 32; the name's NxbB). shuffle=False reads the (sentence-shuffled)
# stream in order as EasyLM does (data.py:274-289): with W ranks, DefaultSampler gives rank r the
# windows r, r + W, ..., so each global micro-batch is 32 consecutive windows.
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='ReproducibleSampler', sampler=dict(type='DefaultSampler', shuffle=False)),
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

# AdamW (README.md:68-69; EasyLM/optimizers.py:132-133, 177-187: beta1 0.9, beta2 0.95, optax's
# eps 1e-8), weight decay 0.1 on EVERY parameter: EasyLM's decay mask excludes nothing
# (llama_model.py:375-377 returns no exclusion; jax_utils.py:386-399), so norms and embeddings
# decay too and there is deliberately no paramwise_cfg (norm_decay_mult=0 would be a deviation).
# Gradient clipping at global norm 1.0 (optimizers.py:134, 178), applied to each update's averaged
# gradient. 4 micro-steps per update (README.md:74; optax.MultiSteps, optimizers.py:52-55):
# mmengine averages the loss over them (OptimWrapper.accumulative_counts) as MultiSteps averages
# the gradients.
accumulative_counts = 4
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1.5e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1),
    clip_grad=dict(max_norm=1.0),
    accumulative_counts=accumulative_counts)

# LR (README.md:70-73; optimizers.py:127, 147-153): optax warmup_cosine_decay_schedule counted in
# *updates* u (the schedule sits inside MultiSteps): 0 -> 1.5e-4 linearly over u = 0..8000, cosine
# to 3e-5 at u = 288000 (counted from 0, warm-up included), 3e-5 after.
# mmengine counts *iterations* (micro-steps): ParamSchedulerHook.after_train_iter steps every
# iter-based scheduler after every iteration, accumulating or not, and OptimWrapper.should_update
# applies update u at iteration 4u + 3 (the 4th micro-step of its window) with the LR of that
# iteration. So the official schedule is stretched by 4 and delayed by 3 iterations: iteration
# 4u + 3 carries lr(u) exactly; iterations 0-2 (accumulation only, nothing is updated) hold the
# warm-up start. Mind mmengine's ends: LinearLR reaches end_factor at iteration end - 1, and the
# cosine reaches eta_min at begin + T_max, so its end is one past that.
# The official warm-up starts at lr 0; mmengine's LinearLR and ConstantLR scale the lr by ratios
# from step to step, so they cannot start from 0: a start factor of 1e-8 (lr 1.5e-12) stands for
# the official 0.
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

# README.md:63: total_steps 400000 counts micro-steps (EasyLM's train_step, llama_train.py:240-245),
# i.e. 100K updates of 524,288 tokens (52B tokens); the run ends before the cosine's end (update
# 288000), as the official example does. The README says to change it "according to the number
# of data": the paper trained every size on one epoch of UVDv1 (420B tokens), whose step count and
# schedule are not published. Validation every 10000 iterations is ours (the official example
# runs none, eval_steps 0) and does not touch training.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=400000, val_interval=10000)
val_cfg = dict()
test_cfg = dict()

# EasyLM's default seed 42 (llama_train.py:29, set at L63; the README run keeps it). The data
# order does not depend on it (the stream is read in order).
randomness = dict(seed=42, deterministic=False)

# README.md:65: a checkpoint every 1000 steps (EasyLM overwrites one streaming checkpoint; its
# milestones every 2000 steps are not kept here: set max_keep_ckpts=-1 to keep every checkpoint)
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=1000, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)  # an iteration-based run
