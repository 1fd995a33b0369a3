# Locked-Text Tuning of ViTamin-S (OpenCLIP's ViTamin-S-LTT model config; the authors' repo calls
# the shape ViTamin-S-T768): the short
# schedule of clip_vitamin-small_... with a 12-layer, 768-wide text tower (E = 768) loaded from a
# pretrained CLIP and locked: no gradient, no update, eval mode (the official --pretrained-text +
# --lock-text). The image tower, its projection and logit_scale (starting from the loaded value)
# train. Authors' README: 63.4% IN zero-shot at 1.28B samples (62.2% without LTT).
# Which CLIP supplied the frozen tower is not pinned by the authors. Our reading, inferred and
# unverified: OpenCLIP's DataComp ViT-L/14, laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K
# (the same 12/768/12 text shape; the authors' usage code loads its tokenizer). Give its released
# open_clip_pytorch_model.bin as text_checkpoint as it is: ContrastiveCLIP reads OpenCLIP
# checkpoints (either text layout) and converts the text tower on load, so
# tools/model_converters/vitamin_official.py is not needed for it.
# The released ViTamin-S-LTT, converted with that tool, tests with this config
# (`tools/test.py CONFIG CONVERTED.pth`; text_checkpoint is read only when training starts).
_base_ = ['./clip_vitamin-small_32xb256-amp-coslr-1.28b_datacomp1b.py']

model = dict(
    text_encoder=dict(embed_dims=768, proj_dims=768, num_layers=12, num_heads=12),
    text_checkpoint='checkpoints/open_clip_vit-l-14_datacomp-xl-s13b-b90k.bin',
    lock_text=True)
