# Zero-shot ImageNet-1k evaluation of the released ViTamin-S CLIP at 224 (1.28B samples, the short
# schedule; authors' README: 62.2% top-1), OpenAI's protocol (1000 class names x 80 templates,
# top-1 / top-5). Convert and test:
#   python tools/model_converters/vitamin_official.py open_clip_pytorch_model.bin CONVERTED.pth
#   python tools/test.py configs/vitamin/clip_vitamin-small_zeroshot-cls_in1k.py CONVERTED.pth
# The model and the evaluation (short side resized to 224, bicubic, centre crop 224) are the
# training config's; nothing differs, this file names the evaluation.
_base_ = ['./clip_vitamin-small_32xb256-amp-coslr-1.28b_datacomp1b.py']
