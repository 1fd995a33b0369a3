# DiT-LLaMA-XL/2 (DDPM) at ImageNet 256x256: the recipe of dit_llama-xl-p2_8xb32-400k_in1k-256px.py
# trained on SD VAE latents extracted once beforehand instead of encoding every image on the fly
# (saves the VAE encoder's forward in every training step). The stored posterior moments (mean
# and log-variance) give a freshly sampled latent each time an image is seen, as on the fly; the
# random horizontal flip picks the stored flipped view (--hflip) instead of flipping pixels.
# The moments are stored as float16. As in the image config, ADM's center_crop_arr is approximated
# by ResizeEdge + CenterCrop (at extraction), and FID by torch-fidelity.
#
# 1. Extract with the image config (its ResizeEdge + CenterCrop pipeline; RandomFlip is removed
#    and replaced by --hflip). Resumable: run the same command again after an interruption.
#      python tools/generation/extract_latents.py \
#          configs/dit_llama/dit_llama-xl-p2_8xb32-400k_in1k-256px.py \
#          data/imagenet/sd-vae-ft-ema-latents-256px --hflip --batch-size 64 --num-workers 8
#    Disk: 1,281,167 images x 8 x 32 x 32 float16 (16 KiB each): ~21 GB, ~42 GB with --hflip.
# 2. Train and sample (the VAE folder is still needed: its scale, and its decoder at test time):
#      bash tools/dist_train.sh configs/dit_llama/dit_llama-xl-p2_8xb32-400k_in1k-latents-256px.py 8
#      bash tools/dist_test.sh \
#          configs/dit_llama/dit_llama-xl-p2_8xb32-400k_in1k-latents-256px.py CKPT 8
_base_ = ['./dit_llama-xl-p2_8xb32-400k_in1k-256px.py']

latents_root = 'data/imagenet/sd-vae-ft-ema-latents-256px'

model = dict(latent_input=True)  # the batches are VAE moments (B, 8, 32, 32)

train_dataloader = dict(
    num_workers=4,
    dataset=dict(_delete_=True, type='LatentDataset', data_root=latents_root, flip=True))
