# Zero-shot ImageNet-1k evaluation of the released ViTamin-XL CLIP at 256, OpenAI's
# protocol (1000 class names x 80 templates, top-1 / top-5). The authors release two files at
# 256 (README.md:77, 79): ViTamin-XL-256px-s13B (12.8B + 0.5B samples, 82.1% top-1) and
# ViTamin-XL-256px (40B samples, 82.3%); the same model, so this config tests either. Convert
# and test:
#   python tools/model_converters/vitamin_official.py open_clip_pytorch_model.bin CONVERTED.pth
#   python tools/test.py configs/vitamin/clip_vitamin-xlarge-256_zeroshot-cls_in1k.py CONVERTED.pth
# The model of the ViTamin-XL run (no position embedding: the same weights at every resolution).
# Test images resized to 256 on the short side (bicubic) and centre-cropped to 256.
_base_ = ['./clip_vitamin-xlarge_224xb403-amp-coslr-12.8b_datacomp1b.py']

image_size = 256
model = dict(vision_backbone=dict(img_size=image_size))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
