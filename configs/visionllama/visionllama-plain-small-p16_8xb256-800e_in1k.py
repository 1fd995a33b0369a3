# VisionLLaMA-S, supervised on ImageNet-1k at 224 for 800 epochs (paper Table 2: 81.6 top-1).
_base_ = ['./_base_/visionllama-plain_deit3-recipe_in1k.py']

model = dict(backbone=dict(arch='small', drop_path_rate=0.05), head=dict(in_channels=384))
