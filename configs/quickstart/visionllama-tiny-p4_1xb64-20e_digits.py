# Quickstart: a tiny VisionLLaMA (4 blocks, AS2DRoPE on) learns scikit-learn's handwritten digits.
#   python tools/train.py configs/quickstart/visionllama-tiny-p4_1xb64-20e_digits.py
#   python tools/test.py  configs/quickstart/visionllama-tiny-p4_1xb64-20e_digits.py CKPT
# 1,438 train / 359 val images (8x8 upsampled to 32x32), written once to data/digits in the
# ImageNet folder format and read through mmpretrain's stock pipeline, Runner and Accuracy.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/digits.py']

image_size = 32

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionLLaMA',
        arch=dict(embed_dims=96, num_layers=4, num_heads=3, feedforward_channels=256),
        img_size=image_size,
        patch_size=4,
        auto_scale=True,  # AS2DRoPE: anchor = the 8x8 training grid
        out_type='cls_token',
        layer_scale_init_value=1e-4,
        drop_path_rate=0.05),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=96,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, )),
)

# grayscale digits loaded as 3 identical channels; mean/std of the training pixels
data_preprocessor = dict(num_classes=10, mean=[87.0] * 3, std=[103.0] * 3, to_rgb=False)

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05, betas=(0.9, 0.999)),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1, end=20),
]
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=5)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(interval=5, max_keep_ckpts=1, save_best='auto'))
randomness = dict(seed=0, deterministic=False)
