# LVM decoder vqlm_30b (EasyLM/models/llama/llama_model.py:197-216: hidden 6656, intermediate
# 17920, 60 layers, 52 heads; 32.2B parameters; not in the paper), trained with the official recipe
# (README.md:57-86 of github.com/ytongbai/LVM with EasyLM's defaults; _base_/lvm_uvd_runtime.py):
# 32 sequences of 4096 tokens per micro-step, 4 micro-steps per update, 400K micro-steps.
# 1B parameters and up: sharded data parallel (FSDP, bf16 compute; _base_/lvm_fsdp.py).
# Activations at 2 x 4096 tokens per GPU would take ~103 GiB (~34 bytes x tokens x hidden per
# block in bf16), so every block is checkpointed (with_cp: only its input is kept).
# 16 GPUs x 2 sequences: the same global batch of 32, with the 16 bytes per parameter of
# parameters, gradients and AdamW states sharded 16 ways (30 GiB per GPU; 60 GiB on 8 GPUs
# leaves too little of an 80 GB GPU).
# Deviation from the official recipe (configs/lvm/recipes.yml): the warm-up starts at lr 1.5e-12,
# where the official starts at 0 (mmengine's LinearLR cannot start from 0).
_base_ = ['./_base_/lvm_fsdp.py']

model = dict(backbone=dict(arch='30b', with_cp=True))
train_dataloader = dict(batch_size=2)
