# SiT-LLaMA-S/2 (flow matching) at ImageNet 256x256: VisionLLaMA Tables 8 / 9 (FID 53.90 with the
# SDE sampler, 54.62 with the ODE sampler, no guidance; the baseline SiT-S/2 58.15).
#   bash tools/dist_train.sh configs/dit_llama/sit_llama-s-p2_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/sit_llama-s-p2_8xb32-400k_in1k-256px.py CKPT 8
#   (50k samples; FID, IS, precision / recall)
# Remaining differences from the official recipe (see _base_/dit_in1k-256px.py): ADM's
# center_crop_arr is approximated by ResizeEdge + CenterCrop; FID by torch-fidelity.
_base_ = ['./_base_/sit_in1k-256px.py']

model = dict(denoiser=dict(arch='s', patch_size=2))
