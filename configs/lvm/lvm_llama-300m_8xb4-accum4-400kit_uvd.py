# LVM decoder vqlm_300m (EasyLM/models/llama/llama_model.py:60-79: hidden 1024, intermediate 2688,
# 22 layers, 8 heads; 291M parameters; LVM-300M of the paper's scaling study), trained with the
# official recipe (README.md:57-86 of github.com/ytongbai/LVM with EasyLM's defaults;
# _base_/lvm_uvd_runtime.py): 32 sequences of 4096 tokens per micro-step, 4 micro-steps per update,
# 400K micro-steps.
# Below 1B parameters: DDP (the Runner's default wrapper), bf16 autocast with fp32 parameters
# (the official --dtype='bf16', README.md:62). Activations at 4 x 4096 tokens per GPU fit without
# checkpointing.
# Deviation from the official recipe (configs/lvm/recipes.yml): the warm-up starts at lr 1.5e-12,
# where the official starts at 0 (mmengine's LinearLR cannot start from 0).
_base_ = ['./_base_/lvm_uvd_runtime.py']

model = dict(backbone=dict(arch='300m'))
# bf16 without loss scaling, as the official run (bf16 has fp32's exponent range): a static scale
# of 1. mmengine's default dynamic scaler doubles the scale every 2000 updates until the
# scaled gradients overflow, and then skips updates.
optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16', loss_scale=1.0)
