# VisionLLaMA-L, supervised ImageNet-1k, second stage (paper Table 2: 84.6 top-1): 20 epochs at
# 224 px from the 800-epoch low-resolution stage (visionllama-plain-large-p16_8xb256-800e_in1k.py,
# `load_from` its last checkpoint). The official fine-tune command of ImageNet1k_SFT.md, as for B
# (visionllama-plain-base-p16_800e-pre_8xb64-20e_in1k.py) except: drop path 0.45, and random
# erasing 0.25 (the command does not pass --reprob, so DeiT's default 0.25 acts).
_base_ = ['./visionllama-plain-base-p16_800e-pre_8xb64-20e_in1k.py']

load_from = 'work_dirs/visionllama-plain-large-p16_8xb256-800e_in1k/epoch_800.pth'

model = dict(backbone=dict(arch='large', img_size=224, drop_path_rate=0.45),
             head=dict(in_channels=1024))

# timm's RandomErasing(0.25, mode='pixel'): per-pixel normal noise in the normalised image
train_pipeline = _base_.train_pipeline
train_pipeline.insert(-1, dict(type='RandomErasing', erase_prob=0.25, mode='rand',
                               min_area_ratio=0.02, max_area_ratio=1 / 3,
                               fill_color=[103.53, 116.28, 123.675],
                               fill_std=[57.375, 57.12, 58.395]))
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
