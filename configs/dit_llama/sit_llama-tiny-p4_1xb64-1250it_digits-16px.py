# A tiny class-conditional SiT-LLaMA trained in pixel space (no VAE, in_channels=3) on scikit-learn's
# handwritten digits at 16x16, through the stock Runner: the flow-matching objective of the ImageNet
# SiT configs (linear interpolant, velocity prediction, Euler-Maruyama SDE sampling) at a toy model
# size, lr, EMA and step count. tests/tools/test_dit_learning.py trains it, samples 10 images per
# class with guidance through tools/test.py, and labels them with a classifier of the real digits.
#   python tools/train.py configs/dit_llama/sit_llama-tiny-p4_1xb64-1250it_digits-16px.py
#   python tools/test.py  configs/dit_llama/sit_llama-tiny-p4_1xb64-1250it_digits-16px.py CKPT
# Everything but the objective, the image size / patch and the schedule is the DDPM toy's.
_base_ = ['./dit_llama-tiny-p2_1xb64-2000it_digits-8px.py']

image_size = 16
data_root = 'data/digits_16px'  # DigitsDataset writes the 16x16 PNGs there once

model = dict(
    denoiser=dict(arch=dict(embed_dims=96, num_layers=3, num_heads=4), patch_size=4,
                  input_size=image_size),
    objective=dict(_delete_=True, type='FlowMatching', path='linear', prediction='velocity',
                   sampler=dict(mode='sde', num_steps=100, diffusion_form='sigma',
                                diffusion_norm=1.0, last_step='mean', last_step_size=0.04)))

train_dataloader = dict(dataset=dict(data_root=data_root, image_size=image_size))

optim_wrapper = dict(optimizer=dict(lr=2e-3))
train_cfg = dict(max_iters=1250, val_interval=1250)
default_hooks = dict(checkpoint=dict(interval=1250))
