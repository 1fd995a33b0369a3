# UperNet on ADE20K with the plain VisionLLaMA-B initialised from MAE (paper Table 4b: 49.0 mIoU
# after 800 pre-training epochs, 50.2 after 1600). mmseg's MAE-UperNet config with the backbone
# swapped: multi-level features from blocks [3, 5, 7, 11] through mmseg's Feature2Pyramid (4x
# deconv-BN-GELU-deconv, 2x deconv, 1x identity, 0.5x max-pool), UPerHead + FCN auxiliary, AdamW lr
# 1e-4 (the official config; the paper's §D.6 says 6e-5), layer decay 0.65, 160k iterations, batch
# 16, slide inference 512/341. The released MAE encoder has a 4x-wide SwiGLU (hidden 8192, with
# biases): that is the width below, so the released checkpoint loads. Convert it first:
#   python tools/model_converters/vision_llama_official.py epoch_800.pth \
#       pretrain/visionllama-base-mae-800e.pth
_base_ = ['mmseg::mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
# the runtime entries of configs/_base_/default_runtime.py (a chain that starts at a complete
# stock config cannot inherit it as well: mmengine allows a key in one base only)
runner_type = 'CheckedRunner'

pretrained = 'pretrain/visionllama-base-mae-800e.pth'
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='VisionLLaMA',
        arch='mae-base',
        ffn_bias=True,
        # the fork applies drop path to the attention branch only (its LLaMAMLP gets none)
        ffn_drop_path=False,
        img_size=512,
        patch_size=16,
        with_cls_token=False,
        out_type='featmap',
        final_norm=False,
        out_indices=[3, 5, 7, 11],
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
)

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerwiseDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65))

# Multi-scale + flip test (`tools/test.py --tta`): the paper reports single-scale mIoU only (Tables
# 4a / 4b), so `tta_model` / `tta_pipeline` stay mmseg's ADE20K default from the base config: the
# image resized by 0.5, 0.75, 1.0, 1.25, 1.5 and 1.75 of its own size (not of the 2048x512
# single-scale test size), each view tested unflipped and flipped with the slide window (512 / 341),
# and the softmax scores of the 12 views averaged at the original size (SegTTAModel).

# stop at the first NaN/inf loss or gradient norm; never save NaN weights or a NaN 'best'
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     nonfinite_check=dict(type='NonFiniteCheckHook'),
                     reproducibility=dict(type='ReproducibleRandomnessHook'))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='ReproducibleSampler',
                 sampler=dict(type='InfiniteSampler', shuffle=True)))
