# UperNet on ADE20K with Pyramid VisionLLaMA-S: the official mmseg config
# (twins_svt_lama_as-*_uperhead_8xb2-160k_ade20k-512x512.py, on mmseg's Twins-SVT-S UperNet
# recipe) with the backbone swapped — AdamW lr 6e-5, wd 0.01, no decay on norms (the official
# 'norm' key catches its norm1/norm2; ours are named ln1/ln2, so every LayerNorm is caught by
# norm_decay_mult=0 as well), 1500 warm-up iterations, poly to 160k, batch 2 x 8, 512x512 crops,
# UPerHead channels 512 + FCN auxiliary, fp16 AMP (the official command passes --amp), and slide
# inference with 512x512 windows at stride 341 on the image resized to short side 512.
# As the official seg configs: auto_scale=True with the released rule (s = 14 / H_stage on both
# axes), the released GSA key positions, drop path 0.2, one LayerNorm per returned stage.
# Initialise from a converted ImageNet checkpoint (the classification head and double norm are
# not used).
_base_ = ['mmseg::twins/twins_svt-s_uperhead_8xb2-160k_ade20k-512x512.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
# the runtime entries of configs/_base_/default_runtime.py (a chain that starts at a complete
# stock config cannot inherit it as well: mmengine allows a key in one base only)
runner_type = 'CheckedRunner'

pretrained = 'pretrain/visionllama-pyramid-small_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='PyramidVisionLLaMA',
        arch='small',
        out_indices=(0, 1, 2, 3),
        out_type='featmap',
        auto_scale=True,
        auto_scale_rule='official',
        gsa_key_pos='official',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))

optim_wrapper = dict(
    type='AmpOptimWrapper',  # dynamic loss scaling, as --amp
    paramwise_cfg=dict(norm_decay_mult=0.0))

# Multi-scale + flip test (`tools/test.py --tta`): the paper reports single-scale mIoU only (Tables
# 4a / 4b), so `tta_model` / `tta_pipeline` stay mmseg's ADE20K default from the base config: the
# image resized by 0.5, 0.75, 1.0, 1.25, 1.5 and 1.75 of its own size (not of the 2048x512
# single-scale test size), each view tested unflipped and flipped with the slide window above, and
# the softmax scores of the 12 views averaged at the original size (SegTTAModel).

# stop at the first NaN/inf loss or gradient norm; never save NaN weights or a NaN 'best'
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     nonfinite_check=dict(type='NonFiniteCheckHook'),
                     reproducibility=dict(type='ReproducibleRandomnessHook'))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='ReproducibleSampler',
                 sampler=dict(type='InfiniteSampler', shuffle=True)))
