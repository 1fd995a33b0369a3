"""GaussianDiffusion (DiT's DDPM): ADM's tables and respacing, one learned-range ancestral step and
the variational-bound term against formulas written out here, the detached mean in the vb term,
and sampling / the loss with the exact denoiser of Gaussian data."""
import math

import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS

from visionllama_mm.models.diffusion.gaussian_diffusion import GaussianDiffusion, space_timesteps

MU, S = 0.5, 0.3   # the analytic data: every dimension ~ N(MU, S^2)


def test_linear_betas_and_alphas_are_adm_float64():
    diffusion = GaussianDiffusion()
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    assert diffusion.betas.dtype == diffusion.alphas_cumprod.dtype == torch.float64
    np.testing.assert_allclose(diffusion.betas.numpy(), betas, rtol=1e-14, atol=0)
    np.testing.assert_allclose(diffusion.alphas_cumprod.numpy(), np.cumprod(1 - betas),
                               rtol=1e-12, atol=0)
    assert diffusion.alphas_cumprod[-1].item() == pytest.approx(4.035829765375676e-05, rel=1e-12)
    # ADM's linear schedule keeps the noise range for other T: betas scaled by 1000 / T
    half = GaussianDiffusion(num_timesteps=500, sampling_steps=None)
    np.testing.assert_allclose(half.betas.numpy(), np.linspace(2e-4, 0.04, 500), rtol=1e-14)


@pytest.mark.parametrize('count', [250, 50, 10, 100])
def test_respacing_equals_adm(count):
    # ADM's evenly spaced positions i * (T - 1) / (count - 1), rounded
    expected = sorted({round(i * 999 / (count - 1)) for i in range(count)})
    assert space_timesteps(1000, count) == expected
    assert GaussianDiffusion(sampling_steps=count).sampling_timesteps == expected
    assert len(expected) == count and expected[0] == 0 and expected[-1] == 999


def test_respacing_known_values():
    assert space_timesteps(1000, 10) == [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]
    steps = space_timesteps(1000, 250)
    assert steps[:14] == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52]
    assert steps[-3:] == [991, 995, 999]
    assert GaussianDiffusion(sampling_steps=None).sampling_timesteps == list(range(1000))
    assert GaussianDiffusion(sampling_steps=1000).sampling_timesteps == list(range(1000))


def _adm_step(abar, kept, index, x, eps, v, noise):
    """ADM's p_sample on the respaced chain, in float64 numpy."""
    a = abar[kept[index]]
    a_prev = abar[kept[index - 1]] if index > 0 else 1.
    beta = 1 - a / a_prev
    post_var = beta * (1 - a_prev) / (1 - a)
    if index == 0:  # log clipped: the first posterior variance is 0, it takes the next step's
        a1, a0 = abar[kept[1]], abar[kept[0]]
        post_var = (1 - a1 / a0) * (1 - a0) / (1 - a1)
    x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
    mean = (math.sqrt(a_prev) * beta / (1 - a)) * x0 \
        + (math.sqrt(1 - beta) * (1 - a_prev) / (1 - a)) * x
    frac = (v + 1) / 2
    log_var = frac * math.log(beta) + (1 - frac) * math.log(post_var)
    return mean + (index > 0) * np.exp(0.5 * log_var) * noise


@pytest.mark.parametrize('index', [0, 1, 100, 249])
def test_learned_range_step_equals_adm_formula(index):
    diffusion = GaussianDiffusion(sampling_steps=250)
    g = torch.Generator().manual_seed(index)
    x = torch.randn(3, 4, 5, 5, generator=g)
    eps = torch.randn(3, 4, 5, 5, generator=g)
    v = torch.rand(3, 4, 5, 5, generator=g) * 2 - 1
    noise = torch.randn(3, 4, 5, 5, generator=g)
    out = diffusion.step(torch.cat([eps, v], 1), x, index, noise)
    expected = _adm_step(diffusion.alphas_cumprod.numpy(), diffusion.sampling_timesteps, index,
                         x.double().numpy(), eps.double().numpy(), v.double().numpy(),
                         noise.double().numpy())
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=2e-6)
    if index > 0:  # the noise matters: a different draw gives a different x_{k-1}
        assert not torch.allclose(out, diffusion.step(torch.cat([eps, v], 1), x, index, -noise))


def test_fixed_small_variance_without_learn_sigma():
    diffusion = GaussianDiffusion(learn_sigma=False, sampling_steps=50)
    x, eps = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    kept, abar = diffusion.sampling_timesteps, diffusion.alphas_cumprod
    index = 20
    a, a_prev = abar[kept[index]].item(), abar[kept[index - 1]].item()
    post_var = (1 - a / a_prev) * (1 - a_prev) / (1 - a)
    ones = torch.ones_like(x)
    std = diffusion.step(eps, x, index, ones) - diffusion.step(eps, x, index, 0 * ones)
    np.testing.assert_allclose(std.numpy(), math.sqrt(post_var), rtol=1e-4)
    losses = diffusion.loss(lambda x_t, t: torch.zeros_like(x_t), x)
    assert set(losses) == {'loss', 'mse'} and losses['loss'] == losses['mse']


def test_sample_passes_original_timesteps_and_equals_its_steps(capsys):
    diffusion = GaussianDiffusion(sampling_steps=10)
    seen = []

    def model_fn(x, t):
        if t is not None:
            seen.append(t.clone())
        return torch.cat([0.5 * x, torch.tanh(x)], 1)

    noise = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    out = diffusion.sample(model_fn, noise, generator=torch.Generator().manual_seed(7))
    assert [t.tolist() for t in seen] == [
        [s, s] for s in [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]]
    assert all(t.dtype == torch.int64 for t in seen)
    # the same chain by hand: one normal draw per step except the last
    g, x = torch.Generator().manual_seed(7), noise
    for index in reversed(range(10)):
        z = torch.randn(x.shape, generator=g) if index else None
        x = diffusion.step(model_fn(x, None), x, index, z)
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    shown = diffusion.sample(model_fn, noise, generator=torch.Generator().manual_seed(7),
                             progress=True)
    torch.testing.assert_close(out, shown, rtol=0, atol=0)
    assert '10/10' in capsys.readouterr().out


def _kl_bits(m1, lv1, m2, lv2):
    return (0.5 * (-1 + lv2 - lv1 + np.exp(lv1 - lv2) + (m1 - m2)**2 * np.exp(-lv2))).reshape(
        len(m1), -1).mean(1) / np.log(2)


def _decoder_nll_bits(x, mean, log_var):
    def cdf(z):  # ADM's tanh approximation of the normal CDF
        return 0.5 * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))

    std = np.exp(0.5 * log_var)
    hi, lo = cdf((x - mean + 1 / 255) / std), cdf((x - mean - 1 / 255) / std)
    prob = np.where(x < -0.999, hi, np.where(x > 0.999, 1 - lo, hi - lo))
    return -np.log(np.maximum(prob, 1e-12)).reshape(len(x), -1).mean(1) / np.log(2)


def test_vb_term_equals_independent_computation():
    diffusion = GaussianDiffusion()
    g = torch.Generator().manual_seed(0)
    B, C = 5, 3
    x0 = torch.randint(0, 256, (B, C, 4, 4), generator=g).double() / 127.5 - 1
    x0[:, :, 0, 0], x0[:, :, 0, 1] = -1., 1.          # the open end bins
    x0 = x0.float()
    eps = torch.randn(B, C, 4, 4, generator=g) * 0.2
    v = torch.rand(B, C, 4, 4, generator=g) * 2 - 1
    noise = torch.randn(B, C, 4, 4, generator=g)
    t = torch.tensor([0, 0, 1, 400, 999])
    terms = diffusion.losses(lambda x_t, tt: torch.cat([eps, v], 1), x0, t, noise)

    abar = diffusion.alphas_cumprod.numpy()
    betas = 1 - abar / np.append(1., abar[:-1])
    x0n, epsn, vn, nn_ = (a.double().numpy() for a in (x0, eps, v, noise))
    expected = []
    for i, step in enumerate(t.tolist()):
        a, a_prev = abar[step], (abar[step - 1] if step else 1.)
        beta = betas[step]
        post_var = beta * (1 - a_prev) / (1 - a)
        log_post = math.log(post_var if step else betas[1] * (1 - abar[0]) / (1 - abar[1]))
        x_t = math.sqrt(a) * x0n[i:i + 1] + math.sqrt(1 - a) * nn_[i:i + 1]
        c1, c2 = math.sqrt(a_prev) * beta / (1 - a), math.sqrt(1 - beta) * (1 - a_prev) / (1 - a)
        true_mean = c1 * x0n[i:i + 1] + c2 * x_t
        pred_x0 = (x_t - math.sqrt(1 - a) * epsn[i:i + 1]) / math.sqrt(a)
        mean = c1 * pred_x0 + c2 * x_t
        frac = (vn[i:i + 1] + 1) / 2
        log_var = frac * math.log(beta) + (1 - frac) * log_post
        if step == 0:
            expected.append(_decoder_nll_bits(x0n[i:i + 1], mean, log_var)[0])
        else:
            expected.append(_kl_bits(true_mean, log_post, mean, log_var)[0])
    np.testing.assert_allclose(terms['vb'].numpy(), expected, rtol=2e-4, atol=1e-6)
    mse = ((nn_ - epsn)**2).reshape(B, -1).mean(1)
    np.testing.assert_allclose(terms['mse'].numpy(), mse, rtol=1e-5)
    np.testing.assert_allclose(terms['loss'].numpy(), mse + np.array(expected), rtol=2e-4)
    assert terms['vb'][0] > 1 and terms['vb'][4] < 0.1     # measured 2.147 / 0.0175 bits per dim


def test_vb_gradient_reaches_only_the_variance_channels():
    diffusion = GaussianDiffusion()
    C = 3
    out = torch.randn(4, 2 * C, 4, 4).requires_grad_()
    x0 = torch.rand(4, C, 4, 4) * 2 - 1
    terms = diffusion.losses(lambda x_t, t: out, x0, torch.tensor([0, 5, 500, 999]),
                             torch.randn(4, C, 4, 4))
    terms['vb'].sum().backward()
    assert torch.all(out.grad[:, :C] == 0)
    assert torch.all(out.grad[:, C:].abs().sum((1, 2, 3)) > 0)
    out.grad = None
    terms = diffusion.losses(lambda x_t, t: out, x0, torch.tensor([0, 5, 500, 999]),
                             torch.randn(4, C, 4, 4))
    terms['mse'].sum().backward()
    assert torch.all(out.grad[:, C:] == 0) and torch.all(out.grad[:, :C] != 0)


def _exact_model(diffusion, learned_variance):
    """The posterior-optimal denoiser of N(MU, S^2) data: E[eps | x_t]; with
    ``learned_variance`` also the v that makes p(x_{k-1} | x_k) the exact Gaussian reverse
    conditional of the respaced chain (posterior variance + c1^2 Var[x0 | x_k])."""
    abar = diffusion.alphas_cumprod
    kept = diffusion.sampling_timesteps
    index_of = torch.full((diffusion.num_timesteps,), -1, dtype=torch.long)
    index_of[kept] = torch.arange(len(kept))
    abar_k = abar[kept]
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar_k[:-1]])
    beta = 1 - abar_k / abar_prev
    post_var = beta * (1 - abar_prev) / (1 - abar_k)
    min_log = torch.cat([post_var[1:2], post_var[1:]]).log()
    c1 = abar_prev.sqrt() * beta / (1 - abar_k)
    var_x0 = S**2 * (1 - abar_k) / (abar_k * S**2 + 1 - abar_k)
    v_exact = (2 * ((post_var + c1**2 * var_x0).log() - min_log) / (beta.log() - min_log) - 1)
    v_exact = v_exact.clamp(-1, 1)

    def model_fn(x, t):
        a = abar[t].view(-1, 1, 1, 1)
        eps = ((1 - a).sqrt() / (a * S**2 + 1 - a) * (x - a.sqrt() * MU)).to(x.dtype)
        if not learned_variance:
            return eps
        v = v_exact[index_of[t]].view(-1, 1, 1, 1).to(x.dtype).expand_as(x)
        return torch.cat([eps, v], 1)

    return model_fn


@pytest.mark.parametrize('steps', [250, 50])
def test_sampling_the_exact_denoiser_recovers_the_data(steps):
    diffusion = GaussianDiffusion(sampling_steps=steps)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1000, 2, 4, 4, generator=g)
    samples = diffusion.sample(_exact_model(diffusion, True), noise, generator=g)
    # 32000 values: standard errors 0.0017 (mean), 0.0012 (std)
    assert samples.mean().item() == pytest.approx(MU, abs=0.008)   # measured 0.4999 / 0.5009
    assert samples.std().item() == pytest.approx(S, abs=0.006)     # measured 0.3002 / 0.3003
    # the fixed small variance shrinks the spread with few steps: 50 steps -> std 0.2528
    if steps == 50:
        small = GaussianDiffusion(sampling_steps=50, learn_sigma=False)
        g = torch.Generator().manual_seed(0)
        low = small.sample(_exact_model(small, False), noise, generator=g)
        assert low.std().item() < S - 0.03


def test_mse_of_the_exact_denoiser_is_its_posterior_variance():
    diffusion = GaussianDiffusion(learn_sigma=False)
    a = diffusion.alphas_cumprod
    var_eps = a * S**2 / (a * S**2 + 1 - a)          # Var[eps | x_t] per dimension
    x0 = MU + S * torch.randn(20000, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    losses = diffusion.loss(_exact_model(diffusion, False), x0,
                            generator=torch.Generator().manual_seed(2))
    # E_t Var[eps | x_t] = 0.1153; given the drawn t (loss draws them first) 0.11713
    assert losses['mse'].item() == pytest.approx(var_eps.mean().item(), rel=0.03)  # 0.1169
    drawn = torch.randint(0, 1000, (20000,), generator=torch.Generator().manual_seed(2))
    assert losses['mse'].item() == pytest.approx(var_eps[drawn].mean().item(), rel=0.006)
    wrong = diffusion.loss(lambda x_t, t: torch.zeros_like(x_t), x0,
                           generator=torch.Generator().manual_seed(2))
    assert wrong['mse'].item() == pytest.approx(1., rel=0.01)                   # 0.9973


def test_loss_reproducible_with_generator_and_built_from_registry():
    diffusion = MODELS.build(dict(type='GaussianDiffusion', sampling_steps=10))
    assert isinstance(diffusion, GaussianDiffusion) and diffusion.sampling_timesteps[1] == 111
    x0 = torch.rand(4, 3, 4, 4) * 2 - 1
    model_fn = lambda x, t: torch.cat([0.1 * x, torch.zeros_like(x)], 1)  # noqa: E731
    first = diffusion.loss(model_fn, x0, generator=torch.Generator().manual_seed(3))
    second = diffusion.loss(model_fn, x0, generator=torch.Generator().manual_seed(3))
    assert set(first) == {'loss', 'mse', 'vb'} and all(v.dim() == 0 for v in first.values())
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert first['loss'].item() == pytest.approx(first['mse'].item() + first['vb'].item(), rel=1e-6)


def test_errors():
    with pytest.raises(ValueError, match='sampling_steps'):
        GaussianDiffusion(sampling_steps=1001)
    with pytest.raises(ValueError, match='sampling_steps'):
        GaussianDiffusion(sampling_steps=1)
    with pytest.raises(ValueError, match='beta_schedule'):
        GaussianDiffusion(beta_schedule='cosine')
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r'learn_sigma=True.*\(2, 6, 4, 4\).*\(2, 3, 4, 4\)'):
        GaussianDiffusion().loss(lambda x_t, t: x_t, x)
    with pytest.raises(ValueError, match=r'learn_sigma=False.*\(2, 3, 4, 4\)'):
        GaussianDiffusion(learn_sigma=False, sampling_steps=10).sample(
            lambda x_t, t: torch.cat([x_t, x_t], 1), x)
    with pytest.raises(ValueError, match='needs noise'):
        GaussianDiffusion(sampling_steps=10).step(torch.cat([x, x], 1), x, 3)


def test_betas_outside_0_1_are_refused():
    """Few timesteps scale the betas past 1 (alpha_bar <= 0, NaN square roots); a zero beta
    divides 0 by 0 in the posterior: every table and loss would be NaN."""
    with pytest.raises(ValueError) as err:
        GaussianDiffusion(num_timesteps=10, sampling_steps=None)
    assert str(err.value) == ('GaussianDiffusion: the betas (beta_start, beta_end scaled by 1000 / '
                              'num_timesteps = 100) must lie in (0, 1), got 0.01 .. 2 for '
                              'beta_start=0.0001, beta_end=0.02, num_timesteps=10; use more '
                              'timesteps or smaller betas.')
    with pytest.raises(ValueError,
                       match=r'must lie in \(0, 1\), got 0 \.\. 0\.02 for beta_start=0'):
        GaussianDiffusion(beta_start=0.)
    tables = GaussianDiffusion(num_timesteps=100, sampling_steps=None).train_chain.tables
    assert all(torch.isfinite(v).all() for v in tables.values())  # 100 steps: betas up to 0.2
