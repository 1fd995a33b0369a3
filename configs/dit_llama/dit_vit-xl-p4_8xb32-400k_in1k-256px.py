# DiT (DDPM) at ImageNet 256x256: spec visionllama §4.2 Table 1 (the baseline DiT-XL/4: FID 43.01 / 22.52).
#   bash tools/dist_train.sh configs/dit_llama/dit_vit-xl-p4_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/dit_vit-xl-p4_8xb32-400k_in1k-256px.py CKPT 8   # 50k samples, FID/IS/P/R
# block_type='dit': the original DiT block (sin-cos position embedding, GELU-tanh MLP)
_base_ = ['./_base_/dit_in1k-256px.py']

model = dict(denoiser=dict(arch='xl', patch_size=4, block_type='dit'))
