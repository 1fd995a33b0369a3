"""StableDiffusionVAE: the sd-vae-ft-ema architecture, parity with diffusers' own AutoencoderKL
(encode posterior, sampling, decode) for a tiny VAE loaded from a directory and from single
files, frozen/eval behaviour, and the errors for missing or mismatched weights."""
import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

from visionllama_mm.models.diffusion.vae import SD_VAE_CONFIG, StableDiffusionVAE
from visionllama_mm.registry import MODELS

TINY = dict(block_out_channels=(32, 32), down_block_types=('DownEncoderBlock2D', ) * 2,
            up_block_types=('UpDecoderBlock2D', ) * 2, norm_num_groups=8, layers_per_block=1,
            latent_channels=4, sample_size=16)


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    """A tiny random AutoencoderKL saved by diffusers, and the same weights as single files."""
    root = tmp_path_factory.mktemp('vae')
    torch.manual_seed(0)
    ref = AutoencoderKL(**TINY).eval()
    with torch.no_grad():  # non-trivial posterior variances (the random quant_conv gives ~0)
        ref.quant_conv.bias[4:] = -1.5
    ref.save_pretrained(str(root / 'dir'))
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    save_file(state, str(root / 'vae.safetensors'))
    torch.save(dict(state_dict=state), str(root / 'vae.pth'))
    return root, ref


def test_sd_vae_ft_ema_architecture():
    # the released stabilityai/sd-vae-ft-ema: 83,653,863 parameters in 248 tensors
    with torch.device('meta'):
        vae = StableDiffusionVAE()
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863
    assert len(vae.vae.state_dict()) == 248
    assert (vae.latent_channels, vae.downsample_factor, vae.scale) == (4, 8, 0.18215)
    assert SD_VAE_CONFIG['block_out_channels'] == (128, 256, 512, 512)


@pytest.mark.parametrize('source', ['dir', 'vae.safetensors', 'vae.pth'])
def test_matches_diffusers(saved, source):
    root, ref = saved
    config = None if source == 'dir' else TINY
    vae = MODELS.registries()[0].build(dict(type='StableDiffusionVAE', path=str(root / source),
                                            scale=0.5, config=config))
    torch.manual_seed(1)
    x = torch.rand(2, 3, 16, 12) * 2 - 1
    with torch.no_grad():
        post = ref.encode(x).latent_dist
        moments = vae.encode_moments(x)
        assert moments.shape == (2, 8, 8, 6) and moments.dtype == torch.float32
        assert torch.equal(moments, post.parameters)
        logvar = moments[:, 4:]
        assert -2.5 < logvar.mean() < -0.5  # the variances really take part in the check
        # the same eps with the same generator: scale * (mean + std * eps)
        z = vae.sample_latents(moments, torch.Generator().manual_seed(3))
        z_ref = post.sample(torch.Generator().manual_seed(3)) * 0.5
        torch.testing.assert_close(z, z_ref, rtol=0, atol=1e-6)
        eps = torch.randn(2, 4, 8, 6, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(z, 0.5 * (post.mean + torch.exp(0.5 * logvar) * eps),
                                   rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(vae.encode(x, torch.Generator().manual_seed(3)), z,
                                   rtol=0, atol=0)
        # decode takes scaled latents and is not clamped
        img = vae.decode(z)
        torch.testing.assert_close(img, ref.decode(z / 0.5).sample, rtol=0, atol=1e-6)
        assert img.shape == (2, 3, 16, 12)
    # extreme log-variances are clamped as diffusers does (to [-30, 20])
    big = torch.cat([torch.zeros(1, 4, 2, 2), torch.full((1, 4, 2, 2), 100.)], 1)
    eps = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(vae.sample_latents(big, torch.Generator().manual_seed(0)),
                               0.5 * torch.exp(torch.tensor(10.)) * eps)


def test_ignores_autocast(saved):
    # inside a mixed-precision step the VAE still runs in float32
    vae = StableDiffusionVAE(str(saved[0] / 'dir'))
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    with torch.autocast('cpu', dtype=torch.bfloat16):
        moments, img = vae.encode_moments(x), vae.decode(torch.ones(1, 4, 4, 4))
        assert torch.nn.functional.linear(x, torch.ones(8, 8)).dtype == torch.bfloat16
    assert torch.equal(moments, vae.encode_moments(x))
    assert torch.equal(img, vae.decode(torch.ones(1, 4, 4, 4)))


def test_frozen_and_always_eval(saved):
    vae = StableDiffusionVAE(str(saved[0] / 'dir'))
    assert not any(p.requires_grad for p in vae.parameters())
    assert vae.train() is vae and not any(m.training for m in vae.modules())
    assert all(m.p == 0 for m in vae.modules() if isinstance(m, torch.nn.Dropout))
    x = torch.zeros(1, 3, 8, 8, requires_grad=True)
    assert not vae.encode(x).requires_grad and not vae.decode(torch.zeros(1, 4, 4, 4)).requires_grad


def test_random_weights_warn(monkeypatch):
    import logging

    from visionllama_mm.models.diffusion import vae as vae_module
    logged = []
    monkeypatch.setattr(vae_module, 'print_log', lambda msg, **kw: logged.append((msg, kw)))
    vae = StableDiffusionVAE(config=TINY)
    assert vae.path is None and len(logged) == 1
    assert 'random weights' in logged[0][0] and logged[0][1]['level'] == logging.WARNING


def test_bad_inputs(saved):
    vae = StableDiffusionVAE(str(saved[0] / 'vae.safetensors'), config=TINY)
    with pytest.raises(ValueError, match=r'divisible by the downsampling factor 2'):
        vae.encode_moments(torch.zeros(1, 3, 9, 8))
    with pytest.raises(ValueError, match=r'expected images \(B, 3, H, W\)'):
        vae.encode_moments(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match=r'expected moments \(B, 8, h, w\)'):
        vae.sample_latents(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match=r'expected scaled latents \(B, 4, h, w\)'):
        vae.decode(torch.zeros(1, 8, 8, 8))


def test_missing_weights(tmp_path, saved):
    missing = tmp_path / 'sd-vae-ft-ema'
    with pytest.raises(FileNotFoundError) as err:
        StableDiffusionVAE(str(missing))
    msg = str(err.value)
    assert str(missing) in msg and 'huggingface-cli download stabilityai/sd-vae-ft-ema' in msg
    assert 'no automatic download' in msg
    missing.mkdir()
    with pytest.raises(FileNotFoundError, match='has no config.json'):
        StableDiffusionVAE(str(missing))
    with pytest.raises(ValueError, match='config is given but .* is a directory'):
        StableDiffusionVAE(str(saved[0] / 'dir'), config=TINY)


def test_mismatched_weights_file(tmp_path, saved):
    state = {k: v.clone() for k, v in saved[1].state_dict().items()}
    del state['decoder.conv_out.bias']
    state['encoder.extra.weight'] = torch.zeros(1)
    state['quant_conv.weight'] = torch.zeros(8, 8, 3, 3)
    path = tmp_path / 'bad.safetensors'
    save_file(state, str(path))
    with pytest.raises(ValueError) as err:
        StableDiffusionVAE(str(path), config=TINY)
    msg = str(err.value)
    assert str(path) in msg
    assert 'missing (1): decoder.conv_out.bias' in msg
    assert 'unexpected (1): encoder.extra.weight' in msg
    assert 'quant_conv.weight: (8, 8, 3, 3) != (8, 8, 1, 1)' in msg
    # the default (sd-vae-ft-ema) architecture against tiny weights: every key named at once
    with pytest.raises(ValueError, match=r'missing \(\d+\).*shape mismatch'):
        StableDiffusionVAE(str(saved[0] / 'vae.safetensors'))
    with pytest.raises(ValueError, match='unknown weights format'):
        (tmp_path / 'w.npz').write_bytes(b'')
        StableDiffusionVAE(str(tmp_path / 'w.npz'), config=TINY)
