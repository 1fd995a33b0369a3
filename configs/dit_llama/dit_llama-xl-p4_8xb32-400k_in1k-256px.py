# DiT-LLaMA-XL/4 (DDPM) at ImageNet 256x256: VisionLLaMA Table 1 (FID 35.99 / 18.69 with CFG 1.5;
# the baseline DiT-XL/4: 43.01 / 22.52).
#   bash tools/dist_train.sh configs/dit_llama/dit_llama-xl-p4_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/dit_llama-xl-p4_8xb32-400k_in1k-256px.py CKPT 8
#   (50k samples; FID, IS, precision / recall)
# Remaining differences from the official recipe (see _base_/dit_in1k-256px.py): ADM's
# center_crop_arr is approximated by ResizeEdge + CenterCrop; FID by torch-fidelity.
_base_ = ['./_base_/dit_in1k-256px.py']

model = dict(denoiser=dict(arch='xl', patch_size=4))
