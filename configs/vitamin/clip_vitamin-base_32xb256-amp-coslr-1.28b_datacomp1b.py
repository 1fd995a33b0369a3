# CLIP training of ViTamin-B, the short schedule (vitamin_b_s1.28B_bs8k.yaml): as ViTamin-S, with
# the B image tower and its 12-layer, 512-wide text tower (E = 512). Released: 68.9% IN zero-shot.
_base_ = ['./clip_vitamin-small_32xb256-amp-coslr-1.28b_datacomp1b.py']

model = dict(
    vision_backbone=dict(arch='base'),
    text_encoder=dict(embed_dims=512, proj_dims=512, num_layers=12, num_heads=8))
