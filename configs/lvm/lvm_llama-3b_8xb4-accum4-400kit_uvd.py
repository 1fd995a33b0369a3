# LVM decoder LVM-3B = vqlm_3b (hidden 3200, intermediate 8640, 26 layers, 32 heads;
# 3.27B parameters), spec §3.2, trained with the recipe of spec §3.3 (_base_/lvm_uvd_runtime.py):
# 32 sequences of 4096 tokens per micro-step, 4 micro-steps per update, 400K micro-steps.
# 1B parameters and up: sharded data parallel (FSDP, bf16 compute; _base_/lvm_fsdp.py).
# Activations at 4 x 4096 tokens per GPU (~34 bytes x tokens x hidden per block in bf16) fit an
# 80 GB GPU without checkpointing.
_base_ = ['./_base_/lvm_fsdp.py']

model = dict(backbone=dict(arch='3b'))
