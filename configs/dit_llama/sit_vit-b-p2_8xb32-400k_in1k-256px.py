# SiT (flow matching) at ImageNet 256x256: spec visionllama §4.2 Tables 8/9 (the baseline SiT-B/2: FID 35.54 SDE).
#   bash tools/dist_train.sh configs/dit_llama/sit_vit-b-p2_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/sit_vit-b-p2_8xb32-400k_in1k-256px.py CKPT 8   # 50k samples, FID/IS/P/R
# block_type='dit': the original DiT block (sin-cos position embedding, GELU-tanh MLP)
_base_ = ['./_base_/sit_in1k-256px.py']

model = dict(denoiser=dict(arch='b', patch_size=2, block_type='dit'))
