# The tokenizer of the toy LVM (configs/lvm/lvm_llama-mini_1xb16-400it_digits-counting.py): a small
# VQGAN (widths 32/32/64, f = 4, 32 codes) trained on scikit-learn's digits at 16x16, so each digit
# is 4x4 = 16 tokens. Same objective as the sample-photos config (L1 + L2 + quantizer loss).
_base_ = ['./vqgan_tiny-f4_1xb8-1500it_sample-photos.py']

arch = dict(resolution=16, hidden_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1,
            z_channels=16, quantized_embed_dim=16, num_embeddings=32)
model = dict(tokenizer=dict(arch=arch), restart_idle_codes=0)

data_root = 'data/digits16'
train_dataloader = dict(
    batch_size=32,
    dataset=dict(_delete_=True, type='DigitsDataset', data_root=data_root, split='train',
                 image_size=16, pipeline={{_base_.test_pipeline}}))  # no flips: digits have a handedness
val_dataloader = dict(
    dataset=dict(_delete_=True, type='DigitsDataset', data_root=data_root, split='val',
                 image_size=16, pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', eta_min=1e-4, by_epoch=False, begin=20, end=300),
]
train_cfg = dict(max_iters=300, val_interval=300)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=300))
