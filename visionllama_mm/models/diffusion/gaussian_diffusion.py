"""DDPM objective and ancestral sampler of DiT (ADM's ``GaussianDiffusion`` with
``create_diffusion(timestep_respacing=...)``): epsilon prediction, learned-range variance and the
hybrid loss ``mse + vb``; sampling on an evenly respaced subset of the training timesteps.

Why not ``diffusers.DDPMScheduler``: it builds its betas and ``alphas_cumprod`` in float32, so the
respaced betas ``1 - abar_t / abar_prev`` lose precision near t = 0; over the 250-step chain one of
its ``step()`` calls differs from the ADM formula (float64 tables) by up to 4e-5 (measured at
t = 12 with unit-scale inputs; 5e-7 only after overwriting its internal table with float64). It
also steps one scalar timestep for the whole batch and has no variational-bound term, so the
tables and both formulas are written here.
"""
import math
import sys
from typing import Callable, Dict, List, Optional

import torch

from ...registry import MODELS

__all__ = ['GaussianDiffusion', 'space_timesteps']

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def space_timesteps(num_timesteps: int, count: int) -> List[int]:
    """ADM's respacing with a single section: ``count`` timesteps from ``range(num_timesteps)``,
    evenly spaced with the fractional stride ``(num_timesteps - 1) / (count - 1)``, each position
    rounded (Python's round-half-even) after accumulating the stride; always keeps 0 and
    ``num_timesteps - 1``. Returns the sorted list, e.g. (1000, 10) -> [0, 111, ..., 999]."""
    if not 1 <= count <= num_timesteps:
        raise ValueError(f'space_timesteps: cannot take {count} steps out of {num_timesteps}')
    stride = 1 if count == 1 else (num_timesteps - 1) / (count - 1)
    steps, position = [], 0.
    for _ in range(count):
        steps.append(round(position))
        position += stride
    return steps


def _mean_flat(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,): the mean over all but the batch dimension."""
    return x.flatten(1).mean(1)


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """Elementwise KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) in nats."""
    return 0.5 * (logvar2 - logvar1 - 1. + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2).square() * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor,
                                        log_scale: torch.Tensor) -> torch.Tensor:
    """Elementwise log-probability (nats) of ``x`` (uint8 levels mapped to [-1, 1]) under
    N(mean, exp(log_scale)^2) integrated over its bin of width 2/255; the end bins extend to
    -inf / +inf. The CDF is the tanh approximation ADM uses, so the decoder NLL has ADM's values."""

    def cdf(z):
        return 0.5 * (1. + torch.tanh(math.sqrt(2. / math.pi) * (z + 0.044715 * z.pow(3))))

    inv_std = torch.exp(-log_scale)
    upper = cdf(inv_std * (x - mean + 1. / 255.))
    lower = cdf(inv_std * (x - mean - 1. / 255.))
    log_upper = upper.clamp(min=1e-12).log()                  # bin (-inf, x + 1/255]
    log_survival = (1. - lower).clamp(min=1e-12).log()        # bin [x - 1/255, inf)
    log_bin = (upper - lower).clamp(min=1e-12).log()
    return torch.where(x < -0.999, log_upper, torch.where(x > 0.999, log_survival, log_bin))


class _Chain:
    """The float64 tables (CPU tensors of shape (K,)) of one diffusion chain given its
    cumulative alphas; index k is the k-th kept step, betas are ``1 - abar_k / abar_{k-1}``."""

    def __init__(self, alphas_cumprod: torch.Tensor):
        abar = alphas_cumprod
        abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
        betas = 1. - abar / abar_prev
        post_var = betas * (1. - abar_prev) / (1. - abar)
        self.tables = dict(
            betas=betas,
            log_betas=betas.log(),
            sqrt_abar=abar.sqrt(),
            sqrt_one_minus_abar=(1. - abar).sqrt(),
            sqrt_recip_abar=abar.rsqrt(),
            sqrt_recipm1_abar=(1. / abar - 1.).sqrt(),
            posterior_variance=post_var,
            # the posterior variance is 0 at the first step: its log takes the second step's value
            posterior_log_variance_clipped=torch.cat([post_var[1:2], post_var[1:]]).log(),
            posterior_mean_coef1=betas * abar_prev.sqrt() / (1. - abar),
            posterior_mean_coef2=(1. - abar_prev) * (1. - betas).sqrt() / (1. - abar))
        self._on_device = {}

    def __len__(self):
        return len(self.tables['betas'])

    def gather(self, name: str, index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``tables[name][index]`` for (B,) indices, cast to ``like``'s dtype and shaped
        (B, 1, ..., 1) to broadcast against ``like`` (B, ...).

        Eager calls copy the tables once to each device they are needed on. Inside a compiled
        graph the (K,) table is read from its CPU copy instead (no copy on the CPU): filling the
        per-device cache there would make the second call recompile."""
        if torch.compiler.is_compiling():
            table = self.tables[name].to(index.device)
        else:
            if index.device not in self._on_device:
                self._on_device[index.device] = {k: v.to(index.device)
                                                 for k, v in self.tables.items()}
            table = self._on_device[index.device][name]
        return table[index].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


@MODELS.register_module()
class GaussianDiffusion:
    """DiT's DDPM: the ``loss`` of a noise-predicting denoiser and its ancestral ``sample``r.

    A plain object without parameters (never in a checkpoint): its float64 tables live on the CPU
    and are copied once to each device the inputs come on; keeping them out of ``nn.Module``
    buffers also keeps them float64 when a model is cast to half precision.

    Args:
        num_timesteps (int): T, the training chain length. Default: 1000.
        beta_schedule (str): ``'linear'`` only (ADM's "linear": ``linspace(s * beta_start,
            s * beta_end, T)`` in float64 with ``s = 1000 / T``, so any T spans the same noise
            range). Default: ``'linear'``.
        beta_start (float), beta_end (float): the 1000-step betas at both ends. Default: 1e-4,
            0.02 (DDPM / DiT).
        learn_sigma (bool): the denoiser returns (B, 2C, ...): epsilon in channels [0, C) and
            ``v`` in [C, 2C) with ``log var = frac * log(beta_t) + (1 - frac) * log(posterior
            var, clipped)``, ``frac = (v + 1) / 2``; the loss adds the variational-bound term.
            ``False``: the denoiser returns (B, C, ...) epsilon, the sampling variance is the
            fixed small (posterior) one, the loss is the MSE only. Note: ADM/DiT's
            ``create_diffusion(learn_sigma=False)`` would pick the fixed *large* variance
            (beta_t). Default: True.
        sampling_steps (int | None): kept timesteps of the sampling chain
            (:func:`space_timesteps`); ``None`` or T: all. Default: 250 (DiT's ``sample.py``).
        clip_denoised (bool): clamp the predicted x0 to [-1, 1] while sampling (pixel space);
            DiT samples latents with False. Default: False.
    """

    def __init__(self,
                 num_timesteps: int = 1000,
                 beta_schedule: str = 'linear',
                 beta_start: float = 1e-4,
                 beta_end: float = 0.02,
                 learn_sigma: bool = True,
                 sampling_steps: Optional[int] = 250,
                 clip_denoised: bool = False):
        if beta_schedule != 'linear':
            raise ValueError(f"GaussianDiffusion: beta_schedule must be 'linear', got "
                             f'{beta_schedule!r}')
        if num_timesteps < 2:
            raise ValueError(f'GaussianDiffusion: num_timesteps must be >= 2, got {num_timesteps}')
        if sampling_steps is None:
            sampling_steps = num_timesteps
        if not 2 <= sampling_steps <= num_timesteps:
            raise ValueError(f'GaussianDiffusion: sampling_steps must be in [2, num_timesteps='
                             f'{num_timesteps}], got {sampling_steps}')
        scale = 1000. / num_timesteps
        self.num_timesteps = num_timesteps
        self.learn_sigma = learn_sigma
        self.clip_denoised = clip_denoised
        self.betas = torch.linspace(scale * beta_start, scale * beta_end, num_timesteps,
                                    dtype=torch.float64)
        if not (0. < scale * beta_start < 1. and 0. < scale * beta_end < 1.):
            # a beta of 0 divides 0 by 0 in the posterior; one >= 1 makes alpha_bar <= 0 and its
            # square root NaN: every table, loss and sample would be NaN
            raise ValueError(
                f'GaussianDiffusion: the betas (beta_start, beta_end scaled by 1000 / '
                f'num_timesteps = {scale:g}) must lie in (0, 1), got {scale * beta_start:g} .. '
                f'{scale * beta_end:g} for beta_start={beta_start}, beta_end={beta_end}, '
                f'num_timesteps={num_timesteps}; use more timesteps or smaller betas.')
        self.alphas_cumprod = torch.cumprod(1. - self.betas, 0)
        self.train_chain = _Chain(self.alphas_cumprod)
        #: original timestep values of the sampling chain, ascending (``model_fn`` receives these)
        self.sampling_timesteps = space_timesteps(num_timesteps, sampling_steps)
        self.sample_chain = _Chain(self.alphas_cumprod[self.sampling_timesteps])

    def __repr__(self):
        return (f'{self.__class__.__name__}(num_timesteps={self.num_timesteps}, '
                f'learn_sigma={self.learn_sigma}, sampling_steps={len(self.sample_chain)}, '
                f'clip_denoised={self.clip_denoised})')

    # ------------------------------------------------------------------ helpers
    def _split_output(self, out: torch.Tensor, x: torch.Tensor):
        """Check the denoiser's output against x (B, C, ...) and return (eps, v or None)."""
        channels = 2 * x.shape[1] if self.learn_sigma else x.shape[1]
        expected = (x.shape[0], channels, *x.shape[2:])
        if tuple(out.shape) != expected:
            raise ValueError(f'GaussianDiffusion(learn_sigma={self.learn_sigma}): model_fn must '
                             f'return {expected} for x_t of shape {tuple(x.shape)}, got '
                             f'{tuple(out.shape)}')
        if self.learn_sigma:
            return out.split(x.shape[1], dim=1)
        return out, None

    def _p_mean_log_variance(self, chain: _Chain, index: torch.Tensor, x: torch.Tensor,
                             eps: torch.Tensor, v: Optional[torch.Tensor], clip: bool):
        """Mean and log variance of p(x_{k-1} | x_k) at chain indices ``index`` (B,)."""
        pred_x0 = (chain.gather('sqrt_recip_abar', index, x) * x
                   - chain.gather('sqrt_recipm1_abar', index, x) * eps)
        if clip:
            pred_x0 = pred_x0.clamp(-1., 1.)
        mean = (chain.gather('posterior_mean_coef1', index, x) * pred_x0
                + chain.gather('posterior_mean_coef2', index, x) * x)
        min_log = chain.gather('posterior_log_variance_clipped', index, x)
        if v is None:
            return mean, min_log.expand_as(x)
        frac = (v + 1.) / 2.
        return mean, frac * chain.gather('log_betas', index, x) + (1. - frac) * min_log

    @staticmethod
    def _randn(shape, like: torch.Tensor, generator: Optional[torch.Generator]):
        if generator is None:
            return torch.randn(shape, device=like.device, dtype=like.dtype)
        return torch.randn(shape, generator=generator, device=generator.device,
                           dtype=like.dtype).to(like.device)

    # ------------------------------------------------------------------ training
    def losses(self, model_fn: ModelFn, x0: torch.Tensor, t: torch.Tensor,
               noise: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Per-sample losses at given timesteps and noise.

        Args:
            model_fn: ``(x_t (B, C, ...), t (B,) int64) -> (B, 2C or C, ...)``.
            x0 (Tensor): clean inputs (B, C, ...).
            t (Tensor): (B,) integer timesteps in [0, T).
            noise (Tensor): like x0, the epsilon of ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps``.

        Returns:
            dict: ``mse`` (B,), the mean squared epsilon error over all but the batch dim;
            with ``learn_sigma`` also ``vb`` (B,) in bits per dim (KL(q(x_{t-1}|x_t, x0) ||
            p(x_{t-1}|x_t)) for t > 0, the discretized-Gaussian decoder NLL of x0 at t = 0),
            computed with the epsilon channels detached so it trains only the variance; ``loss``
            (B,) = mse (+ vb, not rescaled: DiT's LossType.MSE). Computed in float32 or wider.
        """
        chain = self.train_chain
        x_t = (chain.gather('sqrt_abar', t, x0) * x0
               + chain.gather('sqrt_one_minus_abar', t, x0) * noise)
        out = model_fn(x_t, t)
        eps, v = self._split_output(out, x_t)
        dtype = torch.promote_types(out.dtype, torch.float32)
        eps, x0, x_t, noise = eps.to(dtype), x0.to(dtype), x_t.to(dtype), noise.to(dtype)
        terms = dict(mse=_mean_flat((noise - eps).square()))
        if v is None:
            terms['loss'] = terms['mse']
            return terms
        v = v.to(dtype)
        true_mean = (chain.gather('posterior_mean_coef1', t, x_t) * x0
                     + chain.gather('posterior_mean_coef2', t, x_t) * x_t)
        true_log_var = chain.gather('posterior_log_variance_clipped', t, x_t)
        mean, log_var = self._p_mean_log_variance(chain, t, x_t, eps.detach(), v, clip=False)
        kl = _mean_flat(normal_kl(true_mean, true_log_var, mean, log_var)) / math.log(2.)
        nll = -_mean_flat(discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var)) \
            / math.log(2.)
        terms['vb'] = torch.where(t == 0, nll, kl)
        terms['loss'] = terms['mse'] + terms['vb']
        return terms

    def loss(self, model_fn: ModelFn, x0: torch.Tensor,
             generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        """The training loss of a batch x0 (B, C, ...): draws t ~ U{0, ..., T-1} (B,), then the
        noise like x0 (in that order from ``generator`` when given), and returns the batch means
        of :meth:`losses`: ``dict(loss, mse[, vb])`` of scalars."""
        batch = x0.shape[0]
        if generator is None:
            t = torch.randint(0, self.num_timesteps, (batch,), device=x0.device)
        else:
            t = torch.randint(0, self.num_timesteps, (batch,), generator=generator,
                              device=generator.device).to(x0.device)
        noise = self._randn(x0.shape, x0, generator)
        return {k: v.mean() for k, v in self.losses(model_fn, x0, t, noise).items()}

    # ------------------------------------------------------------------ sampling
    def step(self, model_output: torch.Tensor, x: torch.Tensor, index: int,
             noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One ancestral step of the sampling chain: x at kept step ``index`` (0-based into
        :attr:`sampling_timesteps`) -> x at ``index - 1``; ``mean + exp(0.5 * log var) * noise``
        with the respaced betas, no noise at index 0 (``noise`` is then unused).

        Args:
            model_output (Tensor): the denoiser's (B, 2C or C, ...) at ``x``.
            x (Tensor): (B, C, ...).
            index (int): in [0, sampling_steps).
            noise (Tensor, optional): standard normal like x, required for index > 0.
        """
        eps, v = self._split_output(model_output, x)
        idx = torch.full((x.shape[0],), index, dtype=torch.long, device=x.device)
        mean, log_var = self._p_mean_log_variance(self.sample_chain, idx, x, eps.to(x.dtype),
                                                  None if v is None else v.to(x.dtype),
                                                  self.clip_denoised)
        if index == 0:
            return mean
        if noise is None:
            raise ValueError(f'GaussianDiffusion.step: index {index} > 0 needs noise')
        return mean + torch.exp(0.5 * log_var) * noise

    @torch.no_grad()
    def sample(self, model_fn: ModelFn, noise: torch.Tensor,
               generator: Optional[torch.Generator] = None,
               progress: bool = False) -> torch.Tensor:
        """Ancestral sampling from ``noise`` (B, C, ...) (x at the last kept step) down to x0
        (B, C, ...). ``model_fn`` receives the ORIGINAL timestep values (B,) int64 of the kept
        steps (:attr:`sampling_timesteps`, descending); one normal draw like ``noise`` per step
        except the last, from ``generator`` when given; ``progress`` shows mmengine's bar."""
        x = noise
        bar = None
        if progress:
            from mmengine.utils import ProgressBar
            bar = ProgressBar(len(self.sampling_timesteps), file=sys.stdout)
        for index in reversed(range(len(self.sampling_timesteps))):
            t = torch.full((x.shape[0],), self.sampling_timesteps[index], dtype=torch.long,
                           device=x.device)
            out = model_fn(x, t)
            z = self._randn(x.shape, x, generator) if index > 0 else None
            x = self.step(out, x, index, z)
            if bar is not None:
                bar.update()
        return x
