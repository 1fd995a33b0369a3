# Locked-Text Tuning of ViTamin-B (OpenCLIP's ViTamin-B-LTT model config): as the ViTamin-S
# LTT run (the same locked 12/768/12 text tower, E = 768, and its checkpoint; see that config)
# with the B image tower. Authors' README: 70.8% IN zero-shot at 1.28B samples (68.9% without
# LTT; the HF card says 70.72%).
_base_ = ['./clip-ltt_vitamin-small_32xb256-amp-coslr-1.28b_datacomp1b.py']

model = dict(vision_backbone=dict(arch='base'))
