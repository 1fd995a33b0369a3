# LVM decoder vqlm_20b (hidden 6144, intermediate 16128, 46 layers, 48 heads; 20.7B parameters;
# not in the paper), spec §3.2, trained with the recipe of spec §3.3 (_base_/lvm_uvd_runtime.py):
# 32 sequences of 4096 tokens per micro-step, 4 micro-steps per update, 400K micro-steps.
# 1B parameters and up: sharded data parallel (FSDP, bf16 compute; _base_/lvm_fsdp.py).
# Activations at 4 x 4096 tokens per GPU would take ~147 GiB (~34 bytes x tokens x hidden per
# block in bf16), so every block is checkpointed (with_cp: only its input is kept).
_base_ = ['./_base_/lvm_fsdp.py']

model = dict(backbone=dict(arch='20b', with_cp=True))
