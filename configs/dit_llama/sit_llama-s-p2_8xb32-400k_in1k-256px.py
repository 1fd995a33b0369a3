# SiT-LLaMA (flow matching) at ImageNet 256x256: spec visionllama §4.2 Tables 8/9 (FID 53.90 SDE, 54.62 ODE; SiT-S/2 58.15).
#   bash tools/dist_train.sh configs/dit_llama/sit_llama-s-p2_8xb32-400k_in1k-256px.py 8
#   bash tools/dist_test.sh configs/dit_llama/sit_llama-s-p2_8xb32-400k_in1k-256px.py CKPT 8   # 50k samples, FID/IS/P/R
_base_ = ['./_base_/sit_in1k-256px.py']

model = dict(denoiser=dict(arch='s', patch_size=2))
