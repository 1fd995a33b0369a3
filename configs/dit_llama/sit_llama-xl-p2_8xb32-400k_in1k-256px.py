# SiT-LLaMA (flow matching) at ImageNet 256x256: spec visionllama §4.2 Tables 8/9 (FID 12.20 SDE, 12.79 ODE; SiT-XL/2 16.98).
#   bash tools/dist_train.sh configs/dit_llama/sit_llama-xl-p2_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/sit_llama-xl-p2_8xb32-400k_in1k-256px.py CKPT 8   # 50k samples, FID/IS/P/R
_base_ = ['./_base_/sit_in1k-256px.py']

model = dict(denoiser=dict(arch='xl', patch_size=2))
