# Pyramid VisionLLaMA-L, ImageNet-1k 300 epochs (paper Table 2: 83.6 top-1; Twins-SVT-L 83.7).
_base_ = ['./visionllama-pyramid-base_8xb128-300e_in1k.py']

model = dict(backbone=dict(arch='large', drop_path_rate=0.5), head=dict(in_channels=1024))
