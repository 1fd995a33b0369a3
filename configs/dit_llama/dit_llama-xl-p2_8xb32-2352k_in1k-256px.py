# DiT-LLaMA-XL/2 (DDPM) at ImageNet 256x256 for 2352k iterations: VisionLLaMA Table 1 (FID 9.84
# without guidance, 2.42 with CFG 1.5: sFID 4.51, IS 265.39, P 0.83, R 0.57; the baseline DiT-XL/2
# at 2352k: 10.67). The released checkpoint of the official model zoo is the one at 2400k
# iterations.
#   bash tools/dist_train.sh configs/dit_llama/dit_llama-xl-p2_8xb32-2352k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/dit_llama-xl-p2_8xb32-2352k_in1k-256px.py CKPT 8
#   (50k samples; FID, IS, precision / recall)
# Remaining differences from the official recipe (see _base_/dit_in1k-256px.py): ADM's
# center_crop_arr is approximated by ResizeEdge + CenterCrop; FID by torch-fidelity.
_base_ = ['./_base_/dit_in1k-256px.py']

model = dict(denoiser=dict(arch='xl', patch_size=2))
train_cfg = dict(max_iters=2352000, val_interval=2352000)
