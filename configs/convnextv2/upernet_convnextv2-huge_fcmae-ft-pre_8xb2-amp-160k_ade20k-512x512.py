# UperNet on ADE20K (512x512, 160k iterations, batch 16) with ConvNeXt V2-Huge. Paper Table 7
# (arXiv 2301.00808, read from a markdown transcription of the paper): 55.0 mIoU (V2-H FCMAE; 57.0
# at 640 with IN-22K intermediate fine-tuning), multi-scale test. Paper App. A.4: mmseg, AdamW wd
# 0.05, batch 16, 160k iterations at 512x512, sweeps over layer decay {0.8, 0.9}, lr {1e-4, 2e-4,
# 3e-4} and drop path {0.1 ... 0.4} (the chosen values are not given), multi-scale test at [0.75,
# 0.875, 1.0, 1.125, 1.25] x (2048, 512) (`tools/test.py --tta`); initialised from the weights
# *after* IN-1k fine-tuning of the FCMAE model ("superior to using the self-supervised pre-trained
# weights directly"), hence `fcmae-ft-pre`. mmseg's ConvNeXt UperNet config with the backbone
# swapped; its values where the paper sweeps: lr 1e-4, layer decay 0.9, drop path 0.4, AMP, 1500
# warm-up iterations, poly, slide test 512/341. Layer decay: the package's
# LayerwiseDecayOptimWrapperConstructor with the backbone's 'group' numbering (mmpretrain's
# ConvNeXt grouping: 12 groups for 27-block third stages, 6 for Tiny), the same scheme mmdet's
# stock ConvNeXt configs use. (mmseg's LearningRateDecayOptimizerConstructor would accept this
# backbone too, its name contains 'ConvNeXt', but numbers layers its own way.) Checkpoint: the
# fine-tuned classifier (convnextv2-huge_fcmae-pre_32xb32-amp-coslr-50e_in1k.py), loaded by
# init_cfg with prefix='backbone.' (stages and the last stage's norm `norm3` load; `norm0`-`norm2`
# are fresh).
# Everything but the size is the Base config's.
_base_ = ['./upernet_convnextv2-base_fcmae-ft-pre_8xb2-amp-160k_ade20k-512x512.py']

pretrained = 'pretrain/convnextv2-huge_fcmae-ft_in1k.pth'
model = dict(
    backbone=dict(arch='huge', init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[352, 704, 1408, 2816]),
    auxiliary_head=dict(in_channels=1408))
