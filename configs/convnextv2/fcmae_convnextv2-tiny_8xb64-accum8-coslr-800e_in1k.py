# FCMAE pre-training of ConvNeXt V2-Tiny on ImageNet-1k, 800 epochs; IN-1k fine-tuned top-1 of the
# released model: 83.0 (paper Table 14; Table 8 says "800 or 1600" pre-training epochs).
# Recipe (official main_pretrain.py / TRAINING.md): see the base file; the warm-up starts at 1e-9
# x lr (the official one at 0, which mmengine's LinearLR cannot start from).
_base_ = ['./_base_/fcmae_convnextv2_8xb64-accum8-coslr-800e_in1k.py']

model = dict(backbone=dict(arch='tiny'), neck=dict(in_channels=768))
