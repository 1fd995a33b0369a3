"""ClassConditionalDiffusion: losses and samples in pixel space and through a (tiny, random) SD VAE,
pre-extracted moments, guidance, the VAE kept out of checkpoints, seeds, and refused configs."""
import pytest
import torch
from mmpretrain.structures import DataSample

import visionllama_mm  # noqa: F401
from visionllama_mm.models.diffusion import ClassConditionalDiffusion, GenerationDataPreprocessor

TINY_VAE = dict(type='StableDiffusionVAE', path=None, scale=0.18215,
                config=dict(block_out_channels=(16, 16), layers_per_block=1, norm_num_groups=8,
                            latent_channels=4,
                            down_block_types=('DownEncoderBlock2D', ) * 2,
                            up_block_types=('UpDecoderBlock2D', ) * 2))


def _denoiser(in_channels=3, size=8, **kw):
    return dict(type='DiTLLaMA', arch=dict(embed_dims=32, depth=2, num_heads=2), patch_size=2,
                in_channels=in_channels, input_size=size, num_classes=10, **kw)


def _model(objective='ddpm', **kw):
    obj = (dict(type='GaussianDiffusion', sampling_steps=5) if objective == 'ddpm' else
           dict(type='FlowMatching', sampler=dict(mode='ode', method='euler', num_steps=4)))
    kw.setdefault('denoiser', _denoiser())
    return ClassConditionalDiffusion(objective=obj, **kw)


def _samples(labels, start=0):
    return [DataSample(metainfo=dict(sample_idx=start + i)).set_gt_label(int(y))
            for i, y in enumerate(labels)]


def _perturb(model):
    """The official init zeroes the output layer; give it weights so outputs depend on inputs."""
    torch.manual_seed(1)
    for p in model.denoiser.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)


def test_preprocessor_maps_uint8_to_unit_range_and_keeps_moments():
    pre = GenerationDataPreprocessor()
    imgs = [torch.tensor([[[0, 255]]], dtype=torch.uint8).expand(3, 1, 2)] * 2
    out = pre(dict(inputs=imgs, data_samples=None))['inputs']
    assert out.shape == (2, 3, 1, 2) and out.min() == -1 and out.max() == 1
    moments = torch.randn(2, 8, 4, 4)
    assert torch.equal(pre(dict(inputs=list(moments)))['inputs'], moments)
    with pytest.raises(ValueError, match='different shapes'):
        pre(dict(inputs=[torch.zeros(3, 2, 2), torch.zeros(3, 4, 4)]))


@pytest.mark.parametrize('objective', ['ddpm', 'flow'])
def test_pixel_space_loss_backward_and_predict(objective):
    torch.manual_seed(0)
    model = _model(objective)
    _perturb(model)
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    losses = model(x, _samples([0, 1, 2, 3]), mode='loss')
    assert torch.isfinite(losses['loss']) and losses['loss'] > 0
    losses['loss'].backward()
    grads = [p.grad for p in model.denoiser.parameters() if p.grad is not None]
    assert len(grads) == len(list(model.denoiser.parameters()))
    model.eval()
    out = model(torch.zeros(4, 3, 1, 1), _samples([3, 3, 5, 5], start=10), mode='predict')
    assert [s.pred_img.shape for s in out] == [(3, 8, 8)] * 4
    assert all(s.pred_img.dtype == torch.uint8 for s in out)
    assert [int(s.gt_label) for s in out] == [3, 3, 5, 5]
    # the same sample indices give the same images; other indices other noise
    again = model(torch.zeros(4, 3, 1, 1), _samples([3, 3, 5, 5], start=10), mode='predict')
    assert all(torch.equal(a.pred_img, b.pred_img) for a, b in zip(out, again))
    other = model(torch.zeros(4, 3, 1, 1), _samples([3, 3, 5, 5], start=50), mode='predict')
    assert not torch.equal(out[0].pred_img, other[0].pred_img)


def test_guidance_changes_samples_and_uses_the_null_class():
    torch.manual_seed(0)
    plain, guided = _model(cfg_scale=1.0), _model(cfg_scale=4.0, guided_channels=None)
    _perturb(plain)
    guided.load_state_dict(plain.state_dict())
    plain.eval(), guided.eval()
    y = torch.tensor([1, 2])
    a, b = plain.generate(y, seed=3), guided.generate(y, seed=3)
    assert a.shape == b.shape == (2, 3, 8, 8) and (a - b).abs().max() > 1e-3
    assert torch.equal(plain.generate(y, seed=3), a)


def test_to_uint8_matches_dits_conversion():
    x = torch.tensor([-1.2, -1., -0.5, 0., 0.999, 1., 3.])
    ref = torch.clamp(127.5 * x + 128.0, 0, 255).to(torch.uint8)
    assert torch.equal(ClassConditionalDiffusion.to_uint8(x), ref)


def test_vae_latents_and_the_vae_stays_out_of_checkpoints():
    torch.manual_seed(0)
    model = _model(denoiser=_denoiser(in_channels=4, size=4), vae=TINY_VAE)
    assert not any(k.startswith('vae') or '_vae' in k for k in model.state_dict())
    n_denoiser = sum(p.numel() for p in model.denoiser.parameters())
    assert sum(p.numel() for p in model.parameters()) == n_denoiser
    x = torch.rand(2, 3, 8, 8) * 2 - 1  # a 2-level tiny VAE: factor 2 -> 4x4 latents
    losses = model(x, _samples([1, 2]), mode='loss')
    assert torch.isfinite(losses['loss'])
    model.eval()
    out = model(torch.zeros(2, 3, 1, 1), _samples([1, 2]), mode='predict')
    assert out[0].pred_img.shape == (3, 8, 8)
    # pre-extracted moments: the same objective on vae.sample_latents(moments)
    lat = _model(denoiser=_denoiser(in_channels=4, size=4), vae=TINY_VAE, latent_input=True)
    moments = lat.vae.encode_moments(x)
    assert moments.shape == (2, 8, 4, 4)
    assert torch.isfinite(lat(moments, _samples([1, 2]), mode='loss')['loss'])
    with pytest.raises(ValueError, match='VAE moments'):
        lat(x, _samples([1, 2]), mode='loss')


def test_refused_configs():
    with pytest.raises(ValueError, match='in_channels=3'):
        _model(denoiser=_denoiser(in_channels=4))
    with pytest.raises(ValueError, match='latent_input=True needs the vae'):
        _model(latent_input=True)
    with pytest.raises(ValueError, match='cfg_scale must be >= 1'):
        _model(cfg_scale=0.5)
    with pytest.raises(ValueError, match='guided_channels'):
        _model(guided_channels=4)
    with pytest.raises(ValueError, match='latent channels'):
        _model(denoiser=_denoiser(in_channels=3), vae=TINY_VAE)
    model = _model()
    with pytest.raises(ValueError, match='built for 8x8'):
        model(torch.zeros(2, 3, 16, 16), _samples([0, 1]), mode='loss')
    with pytest.raises(ValueError, match='gt_label'):
        model(torch.zeros(2, 3, 8, 8), [DataSample(), DataSample()], mode='loss')
    with pytest.raises(ValueError, match='invalid mode'):
        model(torch.zeros(2, 3, 8, 8), _samples([0, 1]), mode='nope')
