# DiT-LLaMA (DDPM) at ImageNet 256x256: spec visionllama §4.2 Table 1 (FID 9.84 no CFG, 2.42 with CFG 1.5 (sFID 4.51, IS 265.39, P 0.83, R 0.57)).
#   bash tools/dist_train.sh configs/dit_llama/dit_llama-xl-p2_8xb32-2352k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/dit_llama-xl-p2_8xb32-2352k_in1k-256px.py CKPT 8   # 50k samples, FID/IS/P/R
_base_ = ['./_base_/dit_in1k-256px.py']

model = dict(denoiser=dict(arch='xl', patch_size=2))
train_cfg = dict(max_iters=2352000, val_interval=2352000)
