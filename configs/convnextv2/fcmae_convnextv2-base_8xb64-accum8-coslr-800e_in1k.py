# FCMAE pre-training of ConvNeXt V2-Base on ImageNet-1k, 800 epochs
# (IN-1k fine-tuned top-1 84.6 after 800 pre-training epochs, paper Tables 3-4).
# Recipe (spec §2.5): see the base file.
_base_ = ['./_base_/fcmae_convnextv2_8xb64-accum8-coslr-800e_in1k.py']

model = dict(backbone=dict(arch='base'), neck=dict(in_channels=1024))
