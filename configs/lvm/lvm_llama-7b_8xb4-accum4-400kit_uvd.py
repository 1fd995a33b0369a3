# LVM decoder vqlm_7b, the released LVM-7B (hidden 4096, intermediate 11008, 32 layers, 32 heads;
# 6.54B parameters), spec §3.2, trained with the recipe of spec §3.3 (_base_/lvm_uvd_runtime.py):
# 32 sequences of 4096 tokens per micro-step, 4 micro-steps per update, 400K micro-steps.
# 1B parameters and up: sharded data parallel (FSDP, bf16 compute; _base_/lvm_fsdp.py).
# Activations at 4 x 4096 tokens per GPU would take ~68 GiB (~34 bytes x tokens x hidden per
# block in bf16), so every block is checkpointed (with_cp: only its input is kept).
_base_ = ['./_base_/lvm_fsdp.py']

model = dict(backbone=dict(arch='7b', with_cp=True))
