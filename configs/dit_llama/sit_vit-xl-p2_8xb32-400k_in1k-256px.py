# SiT (flow matching) at ImageNet 256x256: the baseline SiT-XL/2 of VisionLLaMA Table 8 (FID 16.98,
# SDE sampler, no guidance).
#   bash tools/dist_train.sh configs/dit_llama/sit_vit-xl-p2_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/sit_vit-xl-p2_8xb32-400k_in1k-256px.py CKPT 8
#   (50k samples; FID, IS, precision / recall)
# block_type='dit': the original DiT block (sin-cos position embedding, GELU-tanh MLP).
# fp32 (no AMP), as the upstream SiT train.py of the SiT numbers VisionLLaMA compares with; the
# VisionLLaMA fork added fp16 AMP for SiT-LLaMA.
# Remaining differences from the official recipe (see _base_/dit_in1k-256px.py): ADM's
# center_crop_arr is approximated by ResizeEdge + CenterCrop; FID by torch-fidelity.
_base_ = ['./_base_/sit_in1k-256px.py']

model = dict(denoiser=dict(arch='xl', patch_size=2, block_type='dit'))
optim_wrapper = dict(type='OptimWrapper')
