# DiT-LLaMA-L/4 (DDPM) at ImageNet 256x256: VisionLLaMA Table 1 (FID 40.32 / 18.64 with CFG 1.5; the
# baseline DiT-L/4: 44.37 / 22.51).
#   bash tools/dist_train.sh configs/dit_llama/dit_llama-l-p4_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/dit_llama-l-p4_8xb32-400k_in1k-256px.py CKPT 8
#   (50k samples; FID, IS, precision / recall)
# Remaining differences from the official recipe (see _base_/dit_in1k-256px.py): ADM's
# center_crop_arr is approximated by ResizeEdge + CenterCrop; FID by torch-fidelity.
_base_ = ['./_base_/dit_in1k-256px.py']

model = dict(denoiser=dict(arch='l', patch_size=4))
