# UperNet on ADE20K with Pyramid VisionLLaMA-S (spec §6.2): mmseg's Twins-SVT-S UperNet recipe with
# the backbone swapped — AdamW lr 6e-5, wd 0.01, no decay on norms, 1500 warm-up iterations, poly
# to 160k, batch 2 x 8, 512x512 crops, UPerHead channels 512 + FCN auxiliary. Testing is the stock
# Twins base's: whole-image inference (test_cfg mode='whole') on the image resized to short side
# 512 (e.g. 683x512, not a multiple of 32; the backbone pads internally). The paper's setting is
# slide inference 512/341 (spec §6.2): add `model.test_cfg.mode=slide
# model.test_cfg.crop_size=(512,512) model.test_cfg.stride=(341,341)` for it.
# As the official seg configs: auto_scale=True with the released rule (s = 14 / H_stage, spec Q6),
# the released GSA key positions, drop path 0.2, one LayerNorm per returned stage. Initialise from a
# converted ImageNet checkpoint (the classification head and double norm are not used).
_base_ = ['mmseg::twins/twins_svt-s_uperhead_8xb2-160k_ade20k-512x512.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)

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
    auxiliary_head=dict(in_channels=256))
