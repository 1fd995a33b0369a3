# Sharded data parallel for the LVM sizes of 1B and up: mmengine's FlexibleRunner with
# FSDPStrategy. Parameters, gradients and AdamW states are sharded over the GPUs (16 bytes per
# parameter / world size: 12 GiB per GPU for 7B on 8 GPUs, where DDP would need 98 GiB).
#
# * model_wrapper: visionllama_mm's ShardedDataParallel = mmengine's MMFullyShardedDataParallel
#   with gradient clipping by the norm of the whole gradient (mmengine's OptimWrapper would clip
#   each rank's shard by its own norm) and strict checkpoint loading; see
#   visionllama_mm/engine/fsdp.py. One FSDP unit per decoder block (TransformerBlock).
# * precision: the official run computes in bf16 with fp32 parameters (README.md:62 --dtype='bf16';
#   EasyLM/models/llama/llama_train.py:95-97 sets only the compute dtype, param_dtype stays fp32).
#   FSDP's mixed precision computes with bf16 copies of the fp32 shards and reduces gradients in
#   fp32, so the optimizer wrapper is the plain fp32 OptimWrapper (an AmpOptimWrapper's autocast
#   and loss scaling are not needed).
# * checkpoints: 'full' = ordinary mmengine checkpoints (the unwrapped model's keys, gathered on
#   rank 0's CPU), loadable by tools/test.py, tools/lvm/generate.py and a resume with any number of
#   GPUs. Rank 0 holds the full model and optimizer state while saving (12 bytes per parameter,
#   ~390 GB for 30B); mmengine's 'local' writes one shard file per rank instead (resume with the
#   same world size only).
#
# On a machine without CUDA, tools/train.py runs it with gloo and device_id='cpu'; launched as one
# process (no --launcher), tools/train.py and tools/test.py use the plain Runner without sharding
# (visionllama_mm/engine/launch.py).
_base_ = ['./lvm_uvd_runtime.py']

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='ShardedDataParallel',
        auto_wrap_policy='transformer_block_wrap_policy',
        mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32',
                             buffer_dtype='float32')),
    state_dict_cfg='full')
optim_wrapper = dict(type='OptimWrapper')
