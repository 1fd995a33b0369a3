# DiT-LLaMA (DDPM) at ImageNet 256x256: spec visionllama §4.2 Table 1 (FID 63.17 no CFG, 39.51 with CFG 1.5; DiT-B/4 68.38 / 45.38).
#   bash tools/dist_train.sh configs/dit_llama/dit_llama-b-p4_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/dit_llama-b-p4_8xb32-400k_in1k-256px.py CKPT 8   # 50k samples, FID/IS/P/R
_base_ = ['./_base_/dit_in1k-256px.py']

model = dict(denoiser=dict(arch='b', patch_size=4))
