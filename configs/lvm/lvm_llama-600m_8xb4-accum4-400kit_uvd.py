# LVM decoder LVM-600M = vqlm_600m (hidden 1536, intermediate 4096, 22 layers, 16 heads;
# 648M parameters), spec §3.2, trained with the recipe of spec §3.3 (_base_/lvm_uvd_runtime.py):
# 32 sequences of 4096 tokens per micro-step, 4 micro-steps per update, 400K micro-steps.
# Below 1B parameters: DDP (the Runner's default wrapper), bf16 autocast with fp32 parameters
# (spec §3.3). Activations at 4 x 4096 tokens per GPU fit without checkpointing.
_base_ = ['./_base_/lvm_uvd_runtime.py']

model = dict(backbone=dict(arch='600m'))
optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16')
