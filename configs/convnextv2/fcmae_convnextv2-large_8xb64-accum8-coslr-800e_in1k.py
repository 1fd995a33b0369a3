# FCMAE pre-training of ConvNeXt V2-Large on ImageNet-1k, 800 epochs
# (IN-1k fine-tuned top-1 85.6 after 800 pre-training epochs, paper Tables 3-4).
# Recipe (official main_pretrain.py / TRAINING.md): see the base file; the warm-up starts at 1e-9
# x lr (the official one at 0, which mmengine's LinearLR cannot start from).
_base_ = ['./_base_/fcmae_convnextv2_8xb64-accum8-coslr-800e_in1k.py']

model = dict(backbone=dict(arch='large'), neck=dict(in_channels=1536))
