"""FlowMatching (SiT's linear path, velocity prediction): the loss against its formula and its
analytic value, SiT's SDE grid and Euler-Maruyama step written out here, and the ODE / SDE samplers
with the exact velocity of Gaussian data."""
import math

import pytest
import torch
from mmpretrain.registry import MODELS

from visionllama_mm.models.diffusion.flow_matching import FlowMatching

MU, S = 0.5, 0.3   # the analytic data: every dimension ~ N(MU, S^2)


def exact_velocity(x, t):
    """E[x1 - x0 | x_t] for x1 ~ N(MU, S^2), x0 ~ N(0, 1), x_t = t x1 + (1 - t) x0."""
    t = t.double().view(-1, *([1] * (x.dim() - 1)))
    var = t**2 * S**2 + (1 - t)**2
    return (MU + (t * S**2 - (1 - t)) / var * (x.double() - t * MU)).to(x.dtype)


def test_loss_formula_and_first_channels():
    fm = FlowMatching()
    g = torch.Generator().manual_seed(0)
    x1, noise = torch.randn(4, 3, 4, 4, generator=g), torch.randn(4, 3, 4, 4, generator=g)
    t = torch.tensor([0., 0.25, 0.5, 1.])
    seen = {}

    def model_fn(x_t, tt):
        seen['x_t'], seen['t'] = x_t, tt
        return torch.cat([0.7 * x_t, torch.full_like(x_t, 100.)], 1)   # 2C: the half is unused

    losses = fm.losses(model_fn, x1, t, noise)
    tb = t.view(-1, 1, 1, 1)
    x_t = tb * x1 + (1 - tb) * noise
    torch.testing.assert_close(seen['x_t'], x_t)
    assert seen['t'].dtype == torch.float32 and seen['t'].tolist() == t.tolist()
    expected = (0.7 * x_t - (x1 - noise)).square().flatten(1).mean(1)
    torch.testing.assert_close(losses['loss'], expected)
    # loss(): noise then t ~ U[0, 1] from the generator, batch mean
    out = fm.loss(model_fn, x1, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    noise, t = torch.randn(x1.shape, generator=g), torch.rand(4, generator=g)
    torch.testing.assert_close(out['loss'], fm.losses(model_fn, x1, t, noise)['loss'].mean())
    assert set(out) == {'loss'} and out['loss'].dim() == 0


def test_train_eps_trims_the_time_range():
    fm = FlowMatching(train_eps=0.1)
    seen = []
    fm.loss(lambda x, t: seen.append(t) or x, torch.randn(4096, 1, 1, 1),
            generator=torch.Generator().manual_seed(0))
    t = seen[0]
    assert 0.1 <= t.min() < 0.102 and 0.898 < t.max() <= 0.9


def test_loss_of_the_exact_velocity_is_its_analytic_value():
    fm = FlowMatching()
    # E_t Var[x1 - x0 | x_t] = integral over [0, 1] (= 0.15 pi for S = 0.3)
    t = torch.linspace(0, 1, 100001, dtype=torch.float64)
    var_u = S**2 + 1 - (t * S**2 - (1 - t))**2 / (t**2 * S**2 + (1 - t)**2)
    expected = torch.trapezoid(var_u, t).item()
    assert expected == pytest.approx(0.15 * math.pi, rel=1e-6)
    x1 = MU + S * torch.randn(20000, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    exact = fm.loss(exact_velocity, x1, generator=torch.Generator().manual_seed(2))['loss']
    assert exact.item() == pytest.approx(expected, rel=0.01)                # measured 0.4719
    # a wrong velocity (the data mean only) is worse: E = S^2 + 1 = 1.09
    wrong = fm.loss(lambda x, t: torch.full_like(x, MU), x1,
                    generator=torch.Generator().manual_seed(2))['loss']
    assert wrong.item() == pytest.approx(1.09, rel=0.01) and wrong > exact + 0.5  # 1.0891


@pytest.mark.parametrize('method,tol', [('dopri5', 0.01), ('heun', 0.003), ('euler', 0.08)])
def test_ode_transports_noise_exactly(method, tol):
    # the exact flow of this linear path maps noise z to MU + S z
    fm = FlowMatching(sampler=dict(mode='ode', method=method))
    noise = torch.randn(500, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    seen = []

    def model_fn(x, t):
        seen.append(t)
        return torch.cat([exact_velocity(x, t), torch.randn_like(x)], 1)

    out = fm.sample(model_fn, noise)
    err = (out - (MU + S * noise)).abs().max().item()
    assert err < tol          # measured dopri5 0.0022, heun 0.0007, euler 0.050
    assert all(t.shape == (500, ) and t.dtype == torch.float32 for t in seen)
    assert all(bool((t == t[0]).all()) and t[0] >= 0 for t in seen)
    # dopri5 (as in SiT) steps past t = 1 and interpolates back: measured t up to 1.37
    assert all(t[0] <= 1 for t in seen) or method == 'dopri5'
    if method == 'euler':     # 49 steps over SiT's linspace(0, 1, 50)
        assert err > 0.02 and len(seen) == 49
        assert [round(t[0].item(), 6) for t in seen[:3]] == [0., round(1 / 49, 6), round(2 / 49, 6)]
    if method == 'heun':      # 2 calls per step
        assert len(seen) == 98
    if method != 'euler':     # measured std 0.3019 / 0.3015 (euler 0.2897)
        assert out.std().item() == pytest.approx(S, abs=0.006)


def test_sde_grid_and_euler_maruyama_step():
    fm = FlowMatching(sampler=dict(mode='sde', num_steps=3, last_step='mean',
                                   last_step_size=0.04, diffusion_norm=0.5))
    seen = []

    def model_fn(x, t):
        seen.append(t)
        return 0.3 * x + t.view(-1, 1, 1) + 0.1

    noise = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    out = fm.sample(model_fn, noise, generator=torch.Generator().manual_seed(1))
    assert all(t.shape == (2, ) and t[0] == t[1] for t in seen)
    assert [t[0].item() for t in seen] == pytest.approx([0., 0.48, 0.96])
    # by hand: D(t) = 0.5 (1 - t), score (t v - x) / (1 - t), dt = 0.48
    g, x = torch.Generator().manual_seed(1), noise.double()
    for t in (0., 0.48):
        v = 0.3 * x + t + 0.1
        drift = v + 0.5 * (1 - t) * (t * v - x) / (1 - t)
        z = torch.randn(x.shape, generator=g).double()
        x = x + drift * 0.48 + math.sqrt(2 * 0.5 * (1 - t) * 0.48) * z
    v = 0.3 * x + 0.96 + 0.1
    x = x + (v + 0.5 * 0.04 * (0.96 * v - x) / 0.04) * 0.04     # the noise-free mean step
    torch.testing.assert_close(out.double(), x, rtol=1e-5, atol=1e-5)


def test_sde_euler_last_step_and_no_last_step():
    noise = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    model_fn = lambda x, t: 0.3 * x + t.view(-1, 1, 1)  # noqa: E731
    out = FlowMatching(sampler=dict(mode='sde', num_steps=2, last_step='euler',
                                    last_step_size=0.2)).sample(
        model_fn, noise, generator=torch.Generator().manual_seed(1))
    z = torch.randn(noise.shape, generator=torch.Generator().manual_seed(1))
    x = noise + (0.3 * noise - noise) * 0.8 + math.sqrt(2 * 0.8) * z   # D = 1, t = 0, dt = 0.8
    x = x + (0.3 * x + 0.8) * 0.2                                       # Euler: velocity only
    torch.testing.assert_close(out, x, rtol=1e-5, atol=1e-5)
    # no last step: the grid runs to 1 - sample_eps and only its left points are evaluated
    seen = []
    FlowMatching(sample_eps=0.1, sampler=dict(mode='sde', num_steps=5, last_step=None)).sample(
        lambda x, t: seen.append(t[0].item()) or x, noise)
    assert seen == pytest.approx([0.1, 0.3, 0.5, 0.7])


@pytest.mark.parametrize('sampler,tol_std', [
    # the noise-free mean step keeps x_0.96's spread minus 2 D h: sqrt(0.09 - 0.0032) = 0.2946
    (dict(mode='sde'), 0.012),                        # measured std 0.2926
    (dict(mode='sde', last_step=None), 0.006),        # 0.3008
    (dict(mode='sde', num_steps=50), 0.015)])         # 0.2916
def test_sde_samples_the_data(sampler, tol_std):
    fm = FlowMatching(sampler=sampler)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1000, 2, 4, 4, generator=g)
    out = fm.sample(exact_velocity, noise, generator=g)
    assert out.mean().item() == pytest.approx(MU, abs=0.008)          # measured 0.4992-0.4998
    assert out.std().item() == pytest.approx(S, abs=tol_std)
    # stochastic: another generator gives other samples of the same law
    other = fm.sample(exact_velocity, noise, generator=torch.Generator().manual_seed(9))
    assert (other - out).abs().mean() > 0.01


@pytest.mark.parametrize('sampler', [dict(mode='sde', num_steps=4),
                                     dict(mode='sde', num_steps=4, last_step=None),
                                     dict(mode='ode', method='heun', num_steps=3)])
def test_progress_bar_does_not_change_the_sample(sampler, capsys):
    fm = FlowMatching(sampler=sampler)
    noise = torch.randn(2, 3, 4)
    quiet = fm.sample(exact_velocity, noise, generator=torch.Generator().manual_seed(0))
    shown = fm.sample(exact_velocity, noise, generator=torch.Generator().manual_seed(0),
                      progress=True)
    torch.testing.assert_close(quiet, shown, rtol=0, atol=0)
    printed = capsys.readouterr().out
    assert ('4/4' if sampler.get('last_step', 'mean') else '3/3') in printed \
        if sampler['mode'] == 'sde' else 'completed: 4' in printed


def test_built_from_registry_with_defaults():
    fm = MODELS.build(dict(type='FlowMatching'))
    assert fm.sampler == dict(mode='sde', num_steps=250, diffusion_form='sigma',
                              diffusion_norm=1.0, last_step='mean', last_step_size=0.04)
    fm = MODELS.build(dict(type='FlowMatching', sampler=dict(mode='ode')))
    assert fm.sampler == dict(mode='ode', method='dopri5', num_steps=50, atol=1e-6, rtol=1e-3)


def test_errors():
    with pytest.raises(ValueError, match='path'):
        FlowMatching(path='vp')
    with pytest.raises(ValueError, match='prediction'):
        FlowMatching(prediction='noise')
    with pytest.raises(ValueError, match='method'):
        FlowMatching(sampler=dict(mode='ode', method='rk45'))
    with pytest.raises(ValueError, match='mode'):
        FlowMatching(sampler=dict(mode='langevin'))
    with pytest.raises(ValueError, match='mode'):
        FlowMatching(sampler=dict(num_steps=10))
    with pytest.raises(ValueError, match=r"unknown sampler keys \['method'\]"):
        FlowMatching(sampler=dict(mode='sde', method='dopri5'))
    with pytest.raises(ValueError, match='num_steps'):
        FlowMatching(sampler=dict(mode='sde', num_steps=1))
    with pytest.raises(ValueError, match='diffusion_form'):
        FlowMatching(sampler=dict(mode='sde', diffusion_form='constant'))
    with pytest.raises(ValueError, match='last_step'):
        FlowMatching(sampler=dict(mode='sde', last_step='tweedie'))
    with pytest.raises(ValueError, match='train_eps'):
        FlowMatching(train_eps=0.5)
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r'\(2, 3 or 6, 4, 4\).*got \(2, 9, 4, 4\)'):
        FlowMatching().loss(lambda x_t, t: torch.cat([x_t] * 3, 1), x)
    with pytest.raises(ValueError, match=r'got \(2, 3, 2, 2\)'):
        FlowMatching(sampler=dict(mode='ode')).sample(lambda x_t, t: x_t[..., :2, :2], x)
