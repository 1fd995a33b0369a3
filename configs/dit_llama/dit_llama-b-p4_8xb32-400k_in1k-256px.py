# DiT-LLaMA-B/4 (DDPM) at ImageNet 256x256: VisionLLaMA Table 1 (FID 63.17 without guidance, 39.51
# with CFG 1.5; the baseline DiT-B/4: 68.38 / 45.38).
#   bash tools/dist_train.sh configs/dit_llama/dit_llama-b-p4_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/dit_llama-b-p4_8xb32-400k_in1k-256px.py CKPT 8
#   (50k samples; FID, IS, precision / recall)
# Remaining differences from the official recipe (see _base_/dit_in1k-256px.py): ADM's
# center_crop_arr is approximated by ResizeEdge + CenterCrop; FID by torch-fidelity.
_base_ = ['./_base_/dit_in1k-256px.py']

model = dict(denoiser=dict(arch='b', patch_size=4))
