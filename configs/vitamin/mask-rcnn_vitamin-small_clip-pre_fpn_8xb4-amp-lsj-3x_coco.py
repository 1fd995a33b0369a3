# Mask R-CNN + FPN on COCO with the CLIP image tower of ViTamin-S, 3x schedule (36 epochs).
# OUR recipe: the ViTamin paper has no closed-vocabulary detection result (its detection results
# are open-vocabulary, Sliding F-ViT with a frozen ViTamin-L). mmdet's ConvNeXt Mask
# R-CNN 3x config with the backbone swapped; kept from it: AdamW lr 1e-4, wd 0.05, steps at epochs
# 27 / 33, 1000 warm-up iterations, AMP, the heads (no BatchNorm in FPN, RPN or RoI heads).
# Changed, as our ConvNeXt V2 Mask R-CNN configs (and ViTDet for plain transformers): large-scale
# jittering at 1024x1024 (scale 0.1-2.0) instead of the multi-scale crop, batch 8 x 4 = 32.
# ViTamin gives three levels, strides 4 / 8 / 16 (MBConv stage 0, MBConv stage 1, transformer); FPN
# takes the three and adds the stride-32 and stride-64 levels by stride-2 convs on its own outputs
# (add_extra_convs='on_output'), so RPN and RoI heads see the usual five / four levels.
# Layer decay 0.7 (ViTDet's value for the 12-block ViT-B; ViTamin-S/B have 14 blocks) through the
# package's LayerwiseDecayOptimWrapperConstructor with ViTamin's numbering (convolutional part and
# pos_embed id 0, block i id i + 1, neck and heads last); drop path 0.1 (ViTamin's CLIP training
# value); OpenAI CLIP mean/std. img_size=1024: the checkpoint's 14x14 position embedding is resized
# (bicubic, antialiased) to 64x64 when it loads; test images (1333x800 at most, padded to 32)
# interpolate it on the fly.
# Checkpoint: a CLIP checkpoint in this package's layout (image tower under `visual.`; a fine-tuned
# classifier loads with prefix='backbone.' instead); the CLIP fc_norm is not part of the featmap
# backbone (reported unused).
_base_ = ['../_base_/mask-rcnn_fpn_8xb4-amp-lsj-3x_coco.py']

pretrained = 'pretrain/vitamin-small_datacomp1b-clip.pth'
model = dict(
    data_preprocessor=dict(
        mean=[0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255],
        std=[0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255]),
    backbone=dict(
        _delete_=True,
        type='ViTamin',
        arch='small',
        img_size=1024,
        out_type='featmap',
        out_indices=(0, 1, 2),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='visual.')),
    neck=dict(in_channels=[64, 128, 384], num_outs=5, add_extra_convs='on_output'))

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.7))
