# VisionLLaMA-B, supervised on ImageNet-1k (paper Table 2: 83.6 top-1 after 800 epochs at 192 px
# and 20 epochs of fine-tuning at 224). This is the 800-epoch stage: training crops of 192 px,
# evaluation at 224 (AS2DRoPE off, as in the released recipe). The 20-epoch stage, whose result is
# the paper's number, is visionllama-plain-base-p16_800e-pre_8xb64-20e_in1k.py (AdamW 1e-5,
# batch 512, label smoothing, RandAugment), which loads this stage's last checkpoint.
_base_ = ['./_base_/visionllama-plain_deit3-recipe_in1k.py']

model = dict(backbone=dict(arch='base', img_size=192, drop_path_rate=0.2),
             head=dict(in_channels=768))
optim_wrapper = dict(optimizer=dict(lr=3e-3))
# the base schedule, its warm-up still starting at lr 1e-6
param_scheduler = _base_.param_scheduler
param_scheduler[0].start_factor = 1e-6 / 3e-3
# the base pipeline with 192-px training crops
train_pipeline = _base_.train_pipeline
train_pipeline[1].scale = 192
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
