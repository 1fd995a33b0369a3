# UperNet on ADE20K (512x512, 160k iterations, batch 16) with the CLIP image tower of ViTamin-S.
# OUR recipe: the ViTamin paper has no closed-vocabulary segmentation result (its dense results are
# open-vocabulary, FC-CLIP with a frozen ViTamin-L). mmseg's ConvNeXt UperNet config
# with the backbone swapped; kept from it: AdamW lr 1e-4, wd 0.05, AMP, 1500 linear warm-up
# iterations then poly, batch 8 x 2, slide test 512 / stride 341, the SyncBN heads (the backbone has
# LayerNorm only). ViTamin gives three levels: MBConv stage 0 (stride 4), MBConv stage 1 (stride
# 8) and the transformer (stride 16), so UPerHead takes three inputs (its pyramid pooling on the
# stride-16 map) and the FCN auxiliary head reads the stride-16 map, as the stock config's does.
# Changed: layer decay 0.65 (mmseg's MAE-B UperNet value, for the 14 transformer blocks; the
# package's LayerwiseDecayOptimWrapperConstructor with ViTamin's numbering: convolutional part and
# pos_embed id 0, block i id i + 1, heads last), drop path 0.1 (ViTamin's CLIP training value),
# OpenAI CLIP mean/std. img_size=512: the checkpoint's 14x14 position embedding is resized
# (bicubic, antialiased) to 32x32 when it loads (the slide test's windows are 512x512 too); other
# input sizes interpolate it on the fly.
# Checkpoint: a CLIP checkpoint in this package's layout (image tower under `visual.`, as the IN-1k
# fine-tuning configs; a fine-tuned classifier loads with prefix='backbone.' instead). Every
# tensor the featmap backbone has loads; the CLIP fc_norm is not part of it (reported unused).
_base_ = ['mmseg::convnext/convnext-base_upernet_8xb2-amp-160k_ade20k-512x512.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
# the runtime entries of configs/_base_/default_runtime.py (a chain that starts at a complete
# stock config cannot inherit it as well: mmengine allows a key in one base only)
runner_type = 'CheckedRunner'

pretrained = 'pretrain/vitamin-small_datacomp1b-clip.pth'
# OpenAI CLIP mean/std, set in the top-level `data_preprocessor` as well as the model's: under
# `tools/test.py --tta` mmengine's TTA model builds the segmentor with the top-level one in place
# of its own (inherited from the stock config, ImageNet's mean/std otherwise)
data_preprocessor = dict(
    mean=[0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255],
    std=[0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255])
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='ViTamin',
        arch='small',
        img_size=512,
        out_type='featmap',
        out_indices=(0, 1, 2),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='visual.')),
    decode_head=dict(in_channels=[64, 128, 384], in_index=[0, 1, 2]),
    auxiliary_head=dict(in_channels=384, in_index=2))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerwiseDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65))

# Multi-scale + flip test (`tools/test.py --tta`): no paper result to match, so `tta_model` /
# `tta_pipeline` stay mmseg's ADE20K default from the base config: the image resized by 0.5, 0.75,
# 1.0, 1.25, 1.5 and 1.75 of its own size (not of the 2048x512 single-scale test size), each view
# tested unflipped and flipped with the slide window, and the softmax scores of the 12 views
# averaged at the original size (SegTTAModel).

# stop at the first NaN/inf loss or gradient norm; never save NaN weights or a NaN 'best'
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     nonfinite_check=dict(type='NonFiniteCheckHook'),
                     reproducibility=dict(type='ReproducibleRandomnessHook'))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='ReproducibleSampler',
                 sampler=dict(type='InfiniteSampler', shuffle=True)))
