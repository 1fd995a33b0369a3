# DiT-LLaMA (DDPM) at ImageNet 256x256: spec visionllama §4.2 Table 1 (the paper trains XL/2 for 2352k iterations; see the -2352k config).
#   bash tools/dist_train.sh configs/dit_llama/dit_llama-xl-p2_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/dit_llama-xl-p2_8xb32-400k_in1k-256px.py CKPT 8   # 50k samples, FID/IS/P/R
_base_ = ['./_base_/dit_in1k-256px.py']

model = dict(denoiser=dict(arch='xl', patch_size=2))
