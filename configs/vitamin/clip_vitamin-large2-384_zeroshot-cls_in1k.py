# Zero-shot ImageNet-1k evaluation of the released ViTamin-L2 @384 CLIP (authors' README:
# 82.1% top-1), the OpenAI protocol (1000 class names x 80 templates): convert the OpenCLIP file
# with tools/model_converters/vitamin_official.py, then
#   python tools/test.py configs/vitamin/clip_vitamin-large2-384_zeroshot-cls_in1k.py CONVERTED.pth
# The model of clip_vitamin-large2_280xb322-amp-coslr-12.8b_datacomp1b.py built at 384 (the converted 384 position embedding loads as it is; a 224
# checkpoint would be resized bicubically); test images resized to 384 on the short side
# (bicubic) and centre-cropped to 384.
_base_ = ['./clip_vitamin-large2_280xb322-amp-coslr-12.8b_datacomp1b.py']

image_size = 384
model = dict(vision_backbone=dict(img_size=image_size, with_cp=False),
             text_encoder=dict(with_cp=False))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
