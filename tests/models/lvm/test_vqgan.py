"""VQGANTokenizer: the released size and names, parity with an independent reference of the
official layout, the released-checkpoint reader, the quantizer's loss and gradient, frozen
behaviour, errors, and the training wrapper."""
import json

import pytest
import torch
import torch.nn.functional as F

import visionllama_mm  # noqa: F401
from visionllama_mm.models.lvm.vqgan import (MUSE_VQGAN_ARCH, VQGANAutoEncoder, VQGANTokenizer,
                                             load_muse_vqgan)
from .muse_vqgan_reference import RefMuseVQGAN

# f = 4 (two downsamplings), attention at 16 and 8 px: at 16 px the encoder level holds 2 ResBlocks
# (2 attention blocks, run), the decoder's 8 px level 3 (run); the mid block attends too
TINY = dict(resolution=16, hidden_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2,
            attn_resolutions=(16, 4), no_attn_mid_block=False, z_channels=8,
            quantized_embed_dim=8, num_embeddings=64)


def _pair(arch=TINY, seed=0):
    torch.manual_seed(seed)
    ours = VQGANTokenizer(arch)
    # spread the codebook so many codes are used (the U(+-1/K) init collapses onto a few)
    ours.quantize.embedding.weight.data.normal_(0, 0.3)
    ref = RefMuseVQGAN({**MUSE_VQGAN_ARCH, **arch})
    missing, unexpected = ref.load_state_dict(ours.state_dict(), strict=True)
    return ours, ref.eval()


def test_released_size_and_names():
    with torch.device('meta'):
        tok = VQGANTokenizer('muse')
    assert sum(p.numel() for p in tok.parameters()) == 146_244_675  # the released 585 MB in fp32
    sd = tok.state_dict()
    assert sd['quantize.embedding.weight'].shape == (8192, 64)
    assert sd['encoder.conv_in.weight'].shape == (128, 3, 3, 3)
    assert sd['encoder.down.1.block.0.nin_shortcut.weight'].shape == (256, 128, 1, 1)
    assert sd['encoder.down.3.downsample.conv.weight'].shape == (512, 512, 3, 3)
    assert 'encoder.down.4.downsample.conv.weight' not in sd
    assert sd['encoder.mid.block_2.conv2.weight'].shape == (768, 768, 3, 3)
    assert sd['decoder.up.4.block.2.conv1.weight'].shape == (768, 768, 3, 3)
    assert sd['decoder.up.3.block.0.nin_shortcut.weight'].shape == (512, 768, 1, 1)
    assert 'decoder.up.0.upsample.conv.weight' not in sd
    assert sd['decoder.up.1.upsample.conv.weight'].shape == (256, 256, 3, 3)
    assert not any('attn' in k for k in sd)
    assert tok.downsample_factor == 16 and tok.tokens_per_image() == 256
    assert tok.tokens_per_image((256, 512)) == 512


def test_parity_with_reference():
    ours, ref = _pair()
    x = torch.rand(2, 3, 16, 24)
    ids = ours.encode(x)
    zq_ref, ids_ref = ref.encode(x)
    assert ids.shape == (2, 4 * 6) and ids.dtype == torch.long
    assert torch.equal(ids, ids_ref)
    assert len(ids.unique()) >= 5  # several codes: the comparison is not trivial
    # decode: square grids as the official decode_code, any grid with hw
    sq = torch.randint(0, 64, (2, 16))
    assert (ours.decode(sq, clamp=False) - ref.decode_code(sq)).abs().max() < 1e-5
    img = ours.decode(ids, hw=(4, 6))
    assert img.shape == (2, 3, 16, 24) and 0 <= img.min() and img.max() <= 1
    recon, ids2, _ = ours(x)
    assert torch.equal(ids2, ids)
    assert torch.allclose(recon, ours.decode(ids, hw=(4, 6), clamp=False), atol=1e-5)


def test_raster_order():
    """Id k of an image is the code of latent position (k // w, k % w): row-major over the grid."""
    ours, _ = _pair()
    x = torch.rand(1, 3, 16, 24)
    ids = ours.encode(x).view(4, 6)
    z = ours.quant_conv(ours.encoder(x))[0]  # (C, 4, 6)
    codes = ours.quantize.embedding.weight
    for r, c in [(0, 0), (0, 5), (1, 0), (3, 2)]:
        assert ids[r, c] == (codes - z[:, r, c]).pow(2).sum(1).argmin()


def test_single_attention_block_is_skipped():
    """Official quirk: a level with one ResBlock builds its attention block but never runs it."""
    arch = dict(TINY, num_res_blocks=1, attn_resolutions=(16, ), no_attn_mid_block=True)
    ours, ref = _pair(arch)
    assert 'encoder.down.0.attn.0.q.weight' in ours.state_dict()
    x = torch.rand(1, 3, 16, 16)
    before = ours.encode(x)
    ours.encoder.down[0].attn[0].q.weight.data.normal_(0, 5)
    assert torch.equal(ours.encode(x), before)
    assert torch.equal(before, ref.encode(x)[1])


def test_quantizer_loss_and_straight_through():
    torch.manual_seed(0)
    tok = VQGANTokenizer(TINY, frozen=False)
    x = torch.rand(2, 3, 16, 16)
    z = tok.quant_conv(tok.encoder(x))
    z_q, ids, loss = tok.quantize(z)
    e = tok.quantize.embedding(ids).view(2, 4, 4, 8).permute(0, 3, 1, 2)
    assert torch.allclose(z_q, e, atol=1e-6)
    assert torch.allclose(loss, 1.25 * F.mse_loss(z, e))  # both terms, beta 0.25
    recon, _, vq = tok(x)
    (recon.mean() + vq).backward()
    assert tok.encoder.conv_in.weight.grad.abs().sum() > 0  # straight-through reaches the encoder
    assert tok.quantize.embedding.weight.grad.abs().sum() > 0


def test_frozen_by_default():
    tok = VQGANTokenizer(TINY)
    assert not any(p.requires_grad for p in tok.parameters())
    tok.train()
    assert not tok.training
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    assert not tok.encode(x).requires_grad
    trainable = VQGANTokenizer(TINY, frozen=False).train()
    assert trainable.training and all(p.requires_grad for p in trainable.parameters())


@pytest.mark.parametrize('x, match', [
    (torch.rand(1, 1, 16, 16), r'expected images \(B, 3, H, W\)'),
    (torch.randint(0, 255, (1, 3, 16, 16), dtype=torch.uint8), 'divide uint8'),
    (torch.rand(1, 3, 16, 16) * 255, r'\[0, 1\]'),
    (torch.rand(1, 3, 18, 16), 'not a multiple of the downsampling factor 4'),
])
def test_encode_errors(x, match):
    with pytest.raises(ValueError, match=match):
        VQGANTokenizer(TINY).encode(x)


def test_decode_and_build_errors():
    tok = VQGANTokenizer(TINY)
    with pytest.raises(ValueError, match='not a square'):
        tok.decode(torch.zeros(1, 12, dtype=torch.long))
    with pytest.raises(ValueError, match=r'must lie in \[0, 64\)'):
        tok.decode(torch.full((1, 16), 64))
    with pytest.raises(ValueError, match='does not hold'):
        tok.decode(torch.zeros(1, 12, dtype=torch.long), hw=(2, 2))
    with pytest.raises(ValueError, match='unknown arch'):
        VQGANTokenizer('muse-xl')
    with pytest.raises(ValueError, match="unknown arch keys \\['hidden_size'\\]"):
        VQGANTokenizer(dict(TINY, hidden_size=3))
    with pytest.raises(ValueError, match='multiple of 32'):
        VQGANTokenizer(dict(TINY, hidden_channels=16))


def _release(tmp_path, arch=TINY, drop=None):
    ours, ref = _pair(arch, seed=3)
    sd = ref.state_dict()
    if drop:
        sd[drop.replace('conv1', 'conv_1')] = sd.pop(drop)
    folder = tmp_path / 'vqvae_ckpts'
    folder.mkdir(parents=True)
    config = {'_class_name': 'VQGANModel',
              **{k: list(v) if isinstance(v, tuple) else v
                 for k, v in {**MUSE_VQGAN_ARCH, **arch}.items()}}
    (folder / 'config.json').write_text(json.dumps(config))
    torch.save(sd, folder / 'pytorch_model.bin')
    return folder, ref


def test_load_muse_vqgan(tmp_path):
    folder, ref = _release(tmp_path)
    sd = load_muse_vqgan(str(folder))
    tok = VQGANTokenizer(TINY)
    tok.load_state_dict(sd, strict=True)
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(tok.encode(x), ref.encode(x)[1])
    bad, _ = _release(tmp_path / 'bad', drop='encoder.down.0.block.1.conv1.weight')
    with pytest.raises(ValueError, match=r"missing keys \['encoder.down.0.block.1.conv1.weight'\]"
                       r".*unexpected keys \['encoder.down.0.block.1.conv_1.weight'\]"):
        load_muse_vqgan(str(bad))


def test_autoencoder_losses_and_psnr():
    torch.manual_seed(0)
    model = VQGANAutoEncoder(tokenizer=dict(type='VQGANTokenizer', arch=TINY))
    assert model.tokenizer.training is False or not model.tokenizer.frozen
    x = torch.rand(2, 3, 16, 16)
    losses = model(x, mode='loss')
    recon, _, vq = model.tokenizer(x)
    assert torch.allclose(losses['loss_l1'], F.l1_loss(recon, x))
    assert torch.allclose(losses['loss_l2'], F.mse_loss(recon, x))
    assert torch.allclose(losses['loss_vq'], vq)
    out = model(x, mode='predict')
    mse = (recon.clamp(0, 1) - x).pow(2).flatten(1).mean(1)
    assert [s.psnr for s in out] == pytest.approx((10 * torch.log10(1 / mse)).tolist(), rel=1e-5)
    assert out[0].pred_img.shape == (3, 16, 16)


def test_degenerate_codebook_and_loss_weights_are_refused():
    with pytest.raises(ValueError) as err:
        VQGANTokenizer(dict(TINY, num_embeddings=1))
    assert str(err.value) == ('VQGANTokenizer: arch num_embeddings (the codebook size) must be an '
                              'int >= 2, got 1.')
    with pytest.raises(ValueError) as err:
        VQGANTokenizer(dict(TINY, num_res_blocks=0, channel_mult=(1, 2)))
    assert str(err.value) == ('VQGANTokenizer: arch num_res_blocks=0 needs channel_mult of ones '
                              '(the encoder changes width only in its ResBlocks); got '
                              'channel_mult=(1, 2).')
    with pytest.raises(ValueError, match='arch commitment_cost must be >= 0, got -0.25'):
        VQGANTokenizer(dict(TINY, commitment_cost=-0.25))
    with pytest.raises(ValueError) as err:
        VQGANAutoEncoder(dict(type='VQGANTokenizer', arch=TINY), l1_weight=0, l2_weight=0)
    assert str(err.value) == ("VQGANAutoEncoder: the loss weights must be >= 0 with l1_weight + "
                              "l2_weight > 0 (a reconstruction term), got {'l1_weight': 0, "
                              "'l2_weight': 0, 'vq_weight': 1.0}.")
    with pytest.raises(ValueError,
                       match="got {'l1_weight': 1.0, 'l2_weight': 1.0, 'vq_weight': -1"):
        VQGANAutoEncoder(dict(type='VQGANTokenizer', arch=TINY), vq_weight=-1)


def test_idle_codes_move_onto_latents_of_the_batch():
    torch.manual_seed(0)
    model = VQGANAutoEncoder(dict(type='VQGANTokenizer', arch=dict(TINY, num_embeddings=64)),
                             restart_idle_codes=2).train()
    assert model.state_dict()['code_idle_steps'].tolist() == [0] * 64
    codebook = model.tokenizer.quantize.embedding.weight
    x = torch.rand(2, 3, 16, 16)
    tok = model.tokenizer
    z = tok.quant_conv(tok.encoder(x))
    used = set(tok.quantize.codes(z).flatten().tolist())
    start = codebook.detach().clone()
    model(x, mode='loss')  # step 1: the unused codes are idle for one step, nothing moves
    assert torch.equal(codebook, start)
    assert model.code_idle_steps.tolist() == [0 if i in used else 1 for i in range(64)]
    model(x, mode='loss')  # step 2: idle for two steps -> moved onto latents of this batch
    moved = (codebook != start).any(1)
    assert set(moved.nonzero().flatten().tolist()) == set(range(64)) - used
    latents = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    for code in codebook[moved]:
        assert torch.isclose(latents, code).all(1).any()
    assert model.code_idle_steps.tolist() == [0] * 64
    # off by default: no buffer, the plain VQ-VAE update
    plain = VQGANAutoEncoder(dict(type='VQGANTokenizer', arch=TINY))
    assert 'code_idle_steps' not in plain.state_dict()
    with pytest.raises(ValueError) as err:
        VQGANAutoEncoder(dict(type='VQGANTokenizer', arch=TINY), restart_idle_codes=-1)
    assert str(err.value) == ('VQGANAutoEncoder: restart_idle_codes must be an int >= 0 '
                              '(training steps; 0 = off), got -1.')
