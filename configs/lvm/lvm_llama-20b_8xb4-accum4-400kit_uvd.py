# LVM decoder vqlm_20b (EasyLM/models/llama/llama_model.py:178-196: hidden 6144, intermediate
# 16128, 46 layers, 48 heads; 20.7B parameters; not in the paper), trained with the official recipe
# (README.md:57-86 of github.com/ytongbai/LVM with EasyLM's defaults; _base_/lvm_uvd_runtime.py):
# 32 sequences of 4096 tokens per micro-step, 4 micro-steps per update, 400K micro-steps.
# 1B parameters and up: sharded data parallel (FSDP, bf16 compute; _base_/lvm_fsdp.py).
# Activations at 4 x 4096 tokens per GPU would take ~147 GiB (~34 bytes x tokens x hidden per
# block in bf16), so every block is checkpointed (with_cp: only its input is kept).
# Deviation from the official recipe (configs/lvm/recipes.yml): the warm-up starts at lr 1.5e-12,
# where the official starts at 0 (mmengine's LinearLR cannot start from 0).
_base_ = ['./_base_/lvm_fsdp.py']

model = dict(backbone=dict(arch='20b', with_cp=True))
