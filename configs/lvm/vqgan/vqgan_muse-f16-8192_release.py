# The released LVM tokenizer (evaluation/vqlm_demo/vqvae_muse.py of github.com/ytongbai/LVM with
# the checkpoint's config.json): the MUSE-style VQGAN of Emma02/vqvae_ckpts
# (= VictorSanh/vqvae_ckpts), 146,244,675 parameters, 256x256 RGB in [0, 1] -> 16x16 = 256 codes
# of 8192. Inference only (the official repo ships no tokenizer training). It is the release's
# "improved" tokenizer (README.md:26), not the paper-era one, so it reproduces no paper number.
# Convert the release with
#   python tools/model_converters/lvm_official.py vqvae_ckpts/ checkpoints/lvm_vqgan_muse.pth
# and use this config with tools/lvm/tokenize_sentences.py (--tokenizer) or as model.tokenizer of
# an LVM config.
custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)

image_size = 256
tokenizer = dict(
    type='VQGANTokenizer',
    arch='muse',
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/lvm_vqgan_muse.pth'))
model = tokenizer
