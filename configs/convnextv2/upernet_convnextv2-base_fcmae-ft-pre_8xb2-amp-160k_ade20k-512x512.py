# UperNet on ADE20K (512x512, 160k iterations, batch 16) with ConvNeXt V2-Base. Paper Table 7 (arXiv
# 2301.00808, read from a markdown transcription of the paper): 52.1 mIoU (V2-B FCMAE; V2-B
# supervised 50.5, V1-B 49.9), multi-scale test. Paper App. A.4: mmseg, AdamW wd 0.05, batch 16,
# 160k iterations at 512x512, sweeps over layer decay {0.8, 0.9}, lr {1e-4, 2e-4, 3e-4} and drop
# path {0.1 ... 0.4} (the chosen values are not given), multi-scale test at [0.75, 0.875, 1.0,
# 1.125, 1.25] x (2048, 512) (`tools/test.py --tta`); initialised from the weights *after* IN-1k
# fine-tuning of the FCMAE model ("superior to using the self-supervised pre-trained weights
# directly"), hence `fcmae-ft-pre`. The rest follows the official ConvNeXt (V1) segmentation code
# (semantic_segmentation/configs/convnext/upernet_convnext_base_512_160k_ade20k_ms.py, the config of
# its multi-scale numbers), which mmseg's stock ConvNeXt UperNet config reproduces; the backbone is
# swapped. Its values where the paper sweeps: lr 1e-4, layer decay 0.9, drop path 0.4. Also from it:
# AMP, 1500 warm-up iterations from 1e-6 x lr, poly decay to 0 over all 160k iterations (the warm-up
# multiplies it, as mmcv's poly + linear warm-up did), seed 0, and whole-image inference
# (`mode='whole'`, the multi-scale config's; its single-scale config used a 512/341 sliding window).
# Layer decay: stage-wise, mmseg's LearningRateDecayOptimizerConstructor (the official one: stem and
# downsamples 0.9^13, stage i 0.9^(12 - i), heads 1; 'num_layers' 12, 6 for Tiny); no weight decay
# on biases and 1-D parameters (norms, GRN gamma/beta).
# Multi-scale + flip test (`tools/test.py --tta`), the paper's ratios: each ratio r scales the test
# size (2048, 512) to (2048 r, 512 r) and the image is resized to fit it, aspect ratio kept, then
# tested unflipped and flipped. This is how mmseg 0.x's `--aug-test` (the official V1 command)
# applied its `img_ratios` (hard-coded there to 0.5-1.75); mmseg 1.x's stock ADE20K TTA instead
# scales the raw image by 0.5-1.75.
# Not deterministic: the official command passes `--deterministic` (cuDNN only in mmseg 0.x);
# mmengine's deterministic mode also enables torch.use_deterministic_algorithms, which raises on the
# CUDA backward of bilinear upsampling that UperNet uses.
# Checkpoint: the fine-tuned classifier (convnextv2-base_fcmae-pre_32xb32-amp-coslr-100e_in1k.py),
# loaded by init_cfg with prefix='backbone.' (stages and the last stage's norm `norm3` load;
# `norm0`-`norm2` are fresh).
_base_ = ['mmseg::convnext/convnext-base_upernet_8xb2-amp-160k_ade20k-512x512.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
# the runtime entries of configs/_base_/default_runtime.py (a chain that starts at a complete
# stock config cannot inherit it as well: mmengine allows a key in one base only)
runner_type = 'CheckedRunner'

pretrained = 'pretrain/convnextv2-base_fcmae-ft_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXtV2',
        arch='base',
        out_indices=(0, 1, 2, 3),
        gap_before_final_norm=False,
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512),
    test_cfg=dict(_delete_=True, mode='whole'))

# the stock optimizer (stage-wise layer decay 0.9 over 12 + 2 ids, AdamW lr 1e-4, wd 0.05, AMP);
# the official poly decay runs from iteration 0, under the warm-up
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0, end=160000),
]
randomness = dict(seed=0, deterministic=False)

img_ratios = [0.75, 0.875, 1.0, 1.125, 1.25]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(int(2048 * r), int(512 * r)), keep_ratio=True)
         for r in img_ratios],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadAnnotations', reduce_zero_label=True)],
        [dict(type='PackSegInputs')]]),
]

# stop at the first NaN/inf loss or gradient norm; never save NaN weights or a NaN 'best'
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     nonfinite_check=dict(type='NonFiniteCheckHook'),
                     reproducibility=dict(type='ReproducibleRandomnessHook'))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='ReproducibleSampler',
                 sampler=dict(type='InfiniteSampler', shuffle=True)))
