# DiT (DDPM) at ImageNet 256x256: the baseline DiT-L/4 of VisionLLaMA Table 1 (FID 44.37 / 22.51
# with CFG 1.5).
#   bash tools/dist_train.sh configs/dit_llama/dit_vit-l-p4_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/dit_vit-l-p4_8xb32-400k_in1k-256px.py CKPT 8
#   (50k samples; FID, IS, precision / recall)
# block_type='dit': the original DiT block (sin-cos position embedding, GELU-tanh MLP).
# fp32 (no AMP), as the upstream DiT train.py, which reproduces the DiT paper's numbers (trained
# in JAX) that VisionLLaMA compares with; the VisionLLaMA fork added fp16 AMP for DiT-LLaMA.
# Remaining differences from the official recipe (see _base_/dit_in1k-256px.py): ADM's
# center_crop_arr is approximated by ResizeEdge + CenterCrop; FID by torch-fidelity.
_base_ = ['./_base_/dit_in1k-256px.py']

model = dict(denoiser=dict(arch='l', patch_size=4, block_type='dit'))
optim_wrapper = dict(type='OptimWrapper')
