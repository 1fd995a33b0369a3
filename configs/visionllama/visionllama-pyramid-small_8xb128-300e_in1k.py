# Pyramid VisionLLaMA-S, ImageNet-1k 300 epochs (paper Table 2: 81.6 top-1; Twins-SVT-S 81.7).
_base_ = ['./visionllama-pyramid-base_8xb128-300e_in1k.py']

model = dict(backbone=dict(arch='small', drop_path_rate=0.2), head=dict(in_channels=512))
