# DiT-LLaMA-XL/2 (DDPM) at ImageNet 256x256 for 400k iterations, the official training command
# (DiTLLaMA.md: --epochs 80, about 400k iterations). The paper's XL/2 row of Table 1 is at 2352k
# iterations: see dit_llama-xl-p2_8xb32-2352k_in1k-256px.py.
#   bash tools/dist_train.sh configs/dit_llama/dit_llama-xl-p2_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/dit_llama-xl-p2_8xb32-400k_in1k-256px.py CKPT 8
#   (50k samples; FID, IS, precision / recall)
# Remaining differences from the official recipe (see _base_/dit_in1k-256px.py): ADM's
# center_crop_arr is approximated by ResizeEdge + CenterCrop; FID by torch-fidelity.
_base_ = ['./_base_/dit_in1k-256px.py']

model = dict(denoiser=dict(arch='xl', patch_size=2))
