# SiT-LLaMA-XL/2 (flow matching) at ImageNet 256x256: VisionLLaMA Tables 8 / 9 (FID 12.20 with the
# SDE sampler, 12.79 with the ODE sampler, no guidance; the baseline SiT-XL/2 16.98).
#   bash tools/dist_train.sh configs/dit_llama/sit_llama-xl-p2_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/sit_llama-xl-p2_8xb32-400k_in1k-256px.py CKPT 8
#   (50k samples; FID, IS, precision / recall)
# Remaining differences from the official recipe (see _base_/dit_in1k-256px.py): ADM's
# center_crop_arr is approximated by ResizeEdge + CenterCrop; FID by torch-fidelity.
_base_ = ['./_base_/sit_in1k-256px.py']

model = dict(denoiser=dict(arch='xl', patch_size=2))
