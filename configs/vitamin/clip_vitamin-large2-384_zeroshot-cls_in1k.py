# Zero-shot ImageNet-1k evaluation of the released ViTamin-L2 CLIP at 384 (12.8B + 0.5B samples;
# authors' README: 82.1% top-1) with OpenAI's protocol (1000 class names x 80 templates, top-1 /
# top-5):
#   python tools/model_converters/vitamin_official.py open_clip_pytorch_model.bin CONVERTED.pth
#   python tools/test.py configs/vitamin/clip_vitamin-large2-384_zeroshot-cls_in1k.py CONVERTED.pth
# The model of the ViTamin-L2 run built at that resolution (a 224 checkpoint's position embedding
# would be resized bicubically on load). Test images resized to 384 on the short side (bicubic) and
# centre-cropped to 384.
_base_ = ['./clip_vitamin-large2_280xb322-amp-coslr-12.8b_datacomp1b.py']

image_size = 384
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
