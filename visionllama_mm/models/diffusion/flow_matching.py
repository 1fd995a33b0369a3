"""Flow-matching objective and samplers of SiT (its ``transport`` with the linear path and
velocity prediction): ``x_t = t * x1 + (1 - t) * x0`` with x0 ~ N(0, I) noise at t = 0 and data x1
at t = 1; the denoiser regresses the velocity ``x1 - x0``. Samples come from the probability-flow
ODE (torchdiffeq: dopri5, or fixed-step Euler / Heun) or from SiT's Euler-Maruyama SDE.
"""
import math
import sys
from typing import Callable, Dict, Optional

import torch

from ...registry import MODELS

__all__ = ['FlowMatching']

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# SiT's sample.py defaults per mode; a sampler dict may override any of its mode's keys
_SAMPLER_DEFAULTS = dict(
    sde=dict(num_steps=250, diffusion_form='sigma', diffusion_norm=1.0, last_step='mean',
             last_step_size=0.04),
    ode=dict(method='dopri5', num_steps=50, atol=1e-6, rtol=1e-3))
# our names -> torchdiffeq 0.2.5 solver names ('heun2': Heun's explicit 2nd-order method)
_ODE_METHODS = dict(dopri5='dopri5', euler='euler', heun='heun2')
_DIFFUSION_FORMS = ('sigma', )
_LAST_STEPS = ('mean', 'euler', None)


@MODELS.register_module()
class FlowMatching:
    """SiT's flow matching (linear interpolant, velocity prediction): ``loss`` and ``sample``.

    A plain object without parameters or state. ``model_fn(x_t, t)`` takes x_t (B, C, ...) and
    float t (B,) in [0, 1] and returns (B, C or 2C, ...), of which the first C channels are the
    velocity (a DiT with ``learn_sigma`` keeps its unused second half, as SiT does).

    Training: t ~ U[train_eps, 1 - train_eps], ``loss = mean_B mean_CHW (v - (x1 - x0))^2``.

    Samplers (``sampler`` dict, ``mode`` plus that mode's keys; missing keys take SiT's defaults):

    - ``mode='ode'``: integrates ``dx/dt = v(x, t)`` from t0 = sample_eps to t1 = 1 - sample_eps
      with ``torchdiffeq.odeint``. ``method``: ``'dopri5'`` (adaptive; ``atol`` 1e-6, ``rtol``
      1e-3) or the fixed-step ``'euler'`` / ``'heun'`` (torchdiffeq's ``'heun2'``) taking
      ``num_steps - 1`` steps over SiT's grid ``linspace(t0, t1, num_steps)`` (default 50).
      dopri5 picks its own steps: SiT's ``num_steps`` only sets where it reports the trajectory,
      which does not change the sample (checked), so it is integrated over [t0, t1] directly.
      Like SiT's, its last step may end past t1 (it interpolates back), so ``model_fn`` can see
      t > 1 (about 1.4 measured). The fixed-step methods have no tolerances (torchdiffeq
      ignores ``atol`` / ``rtol``).
    - ``mode='sde'`` (SiT's ``sample_sde`` with Euler-Maruyama): with ``D(t) = diffusion_norm *
      (1 - t)`` (``diffusion_form='sigma'``, sigma_t of the linear path; SiT's sample.py
      default and the only form offered) and the score from the velocity
      ``s = (t * v - x) / (1 - t)``, it steps
      ``x += (v + D s) dt + sqrt(2 D dt) z`` (i.e. drift ``v + w/2 s``, noise ``sqrt(w) dW``,
      ``w = 2D``) at the ``num_steps - 1`` left points of ``linspace(t0, t1, num_steps)``,
      ``t0 = sample_eps``, ``t1 = 1 - last_step_size``; then one noise-free last step at t1 of
      size ``last_step_size``: ``'mean'`` ``x + (v + D s) h``, ``'euler'`` ``x + v h``. With
      ``last_step=None`` there is none and t1 = 1 - sample_eps. ``num_steps`` = model calls
      (250 by default: 249 stochastic steps of 0.96 / 249 and the 0.04 mean step).

    Args:
        path (str): ``'linear'`` only. Default: ``'linear'``.
        prediction (str): ``'velocity'`` only. Default: ``'velocity'``.
        train_eps (float): trims the training t range at both ends. SiT's create_transport sets
            0 for the linear path with velocity prediction (stable at both ends). Default: 0.
        sample_eps (float): trims the ODE interval at both ends and the SDE's start (and its
            end without a last step). SiT: 0 for linear / velocity. Default: 0.
        sampler (dict | None): see above; None: ``dict(mode='sde')`` with SiT's SDE defaults.
    """

    def __init__(self,
                 path: str = 'linear',
                 prediction: str = 'velocity',
                 train_eps: float = 0.,
                 sample_eps: float = 0.,
                 sampler: Optional[dict] = None):
        if path != 'linear':
            raise ValueError(f"FlowMatching: path must be 'linear', got {path!r}")
        if prediction != 'velocity':
            raise ValueError(f"FlowMatching: prediction must be 'velocity', got {prediction!r}")
        for name, eps in (('train_eps', train_eps), ('sample_eps', sample_eps)):
            if not 0. <= eps < 0.5:
                raise ValueError(f'FlowMatching: {name} must be in [0, 0.5), got {eps}')
        self.train_eps = float(train_eps)
        self.sample_eps = float(sample_eps)
        self.sampler = self._check_sampler(dict(mode='sde') if sampler is None else sampler)

    def _check_sampler(self, sampler: dict) -> dict:
        sampler = dict(sampler)
        mode = sampler.pop('mode', None)
        if mode not in _SAMPLER_DEFAULTS:
            raise ValueError(f"FlowMatching: sampler['mode'] must be 'sde' or 'ode', got {mode!r}")
        unknown = set(sampler) - set(_SAMPLER_DEFAULTS[mode])
        if unknown:
            raise ValueError(f'FlowMatching: unknown sampler keys {sorted(unknown)} for mode '
                             f'{mode!r}; allowed: {sorted(_SAMPLER_DEFAULTS[mode])}')
        cfg = dict(_SAMPLER_DEFAULTS[mode], **sampler, mode=mode)
        if int(cfg['num_steps']) != cfg['num_steps'] or cfg['num_steps'] < 2:
            raise ValueError(f"FlowMatching: sampler num_steps must be an integer >= 2, got "
                             f"{cfg['num_steps']}")
        if mode == 'ode':
            if cfg['method'] not in _ODE_METHODS:
                raise ValueError(f"FlowMatching: ODE method must be one of "
                                 f"{sorted(_ODE_METHODS)}, got {cfg['method']!r}")
            return cfg
        if cfg['diffusion_form'] not in _DIFFUSION_FORMS:
            raise ValueError(f'FlowMatching: SDE diffusion_form must be one of {_DIFFUSION_FORMS}, '
                             f"got {cfg['diffusion_form']!r}")
        if cfg['last_step'] not in _LAST_STEPS:
            raise ValueError(f'FlowMatching: SDE last_step must be one of {_LAST_STEPS}, got '
                             f"{cfg['last_step']!r}")
        if cfg['last_step'] is not None and not 0. < cfg['last_step_size'] < 1. - self.sample_eps:
            raise ValueError(f"FlowMatching: SDE last_step_size must be in (0, 1 - sample_eps), "
                             f"got {cfg['last_step_size']}")
        return cfg

    def __repr__(self):
        return (f'{self.__class__.__name__}(train_eps={self.train_eps}, '
                f'sample_eps={self.sample_eps}, sampler={self.sampler})')

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _velocity(model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The first C channels of ``model_fn(x, t)``, checked, in x's dtype."""
        out = model_fn(x, t)
        B, C = x.shape[:2]
        if out.shape[0] != B or out.shape[1] not in (C, 2 * C) or out.shape[2:] != x.shape[2:]:
            raise ValueError(f'FlowMatching: model_fn must return (B, C or 2C, ...) = '
                             f'({B}, {C} or {2 * C}, {", ".join(map(str, x.shape[2:]))}) for x_t '
                             f'of shape {tuple(x.shape)}, got {tuple(out.shape)}')
        return out[:, :C].to(x.dtype)

    @staticmethod
    def _random(fn, shape, like: torch.Tensor, generator: Optional[torch.Generator]):
        if generator is None:
            return fn(shape, device=like.device, dtype=like.dtype)
        return fn(shape, generator=generator, device=generator.device,
                  dtype=like.dtype).to(like.device)

    # ------------------------------------------------------------------ training
    def losses(self, model_fn: ModelFn, x1: torch.Tensor, t: torch.Tensor,
               noise: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Per-sample loss (B,) at given t (B,) and noise x0 (like x1): the mean over all but
        the batch dim of ``(v(x_t, t) - (x1 - x0))^2``, in float32 or wider."""
        t_ = t.to(x1.dtype).view(-1, *([1] * (x1.dim() - 1)))
        x_t = t_ * x1 + (1. - t_) * noise
        v = self._velocity(model_fn, x_t, t.to(x1.dtype))
        dtype = torch.promote_types(x1.dtype, torch.float32)
        err = v.to(dtype) - (x1 - noise).to(dtype)
        return dict(loss=err.square().flatten(1).mean(1))

    def loss(self, model_fn: ModelFn, x1: torch.Tensor,
             generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        """The training loss of a data batch x1 (B, C, ...): draws the noise x0 like x1, then
        t ~ U[train_eps, 1 - train_eps] (B,) (in that order from ``generator`` when given);
        returns ``dict(loss=scalar)``, the batch mean of :meth:`losses`."""
        noise = self._random(torch.randn, x1.shape, x1, generator)
        u = self._random(torch.rand, (x1.shape[0],), x1, generator)
        t = self.train_eps + (1. - 2. * self.train_eps) * u
        return {k: v.mean() for k, v in self.losses(model_fn, x1, t, noise).items()}

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, model_fn: ModelFn, noise: torch.Tensor,
               generator: Optional[torch.Generator] = None,
               progress: bool = False) -> torch.Tensor:
        """Transport ``noise`` (B, C, ...) at t = t0 to data (B, C, ...) with the configured
        sampler; the SDE draws one normal like ``noise`` per stochastic step, in time order,
        from ``generator`` when given (the ODE draws nothing). ``progress``: mmengine's bar over
        the SDE steps, or a count of the ODE's model calls."""
        bar = None
        if progress:
            from mmengine.utils import ProgressBar
            steps = 0   # the ODE's model calls are not known in advance: a count
            if self.sampler['mode'] == 'sde':
                steps = self.sampler['num_steps'] - (self.sampler['last_step'] is None)
            bar = ProgressBar(steps, file=sys.stdout)   # the current stdout, not import-time
        if self.sampler['mode'] == 'ode':
            return self._sample_ode(model_fn, noise, bar)
        return self._sample_sde(model_fn, noise, generator, bar)

    def _sample_ode(self, model_fn, noise, bar):
        from torchdiffeq import odeint
        cfg = self.sampler
        B = noise.shape[0]
        t0, t1 = self.sample_eps, 1. - self.sample_eps
        grid_dtype = torch.promote_types(noise.dtype, torch.float32)
        count = 2 if cfg['method'] == 'dopri5' else cfg['num_steps']
        grid = torch.linspace(t0, t1, count, dtype=grid_dtype, device=noise.device)

        def velocity(t, x):
            if bar is not None:
                bar.update()
            return self._velocity(model_fn, x, t.to(x.dtype).expand(B))

        return odeint(velocity, noise, grid, method=_ODE_METHODS[cfg['method']],
                      atol=cfg['atol'], rtol=cfg['rtol'])[-1]

    def _sample_sde(self, model_fn, noise, generator, bar):
        cfg = self.sampler
        last, size = cfg['last_step'], cfg['last_step_size']
        t0 = self.sample_eps
        t1 = 1. - (size if last is not None else self.sample_eps)
        grid = torch.linspace(t0, t1, cfg['num_steps'], dtype=torch.float64).tolist()
        dt = (t1 - t0) / (cfg['num_steps'] - 1)
        norm = cfg['diffusion_norm']
        B = noise.shape[0]

        def velocity_and_drift(x, t):
            v = self._velocity(model_fn, x, torch.full((B,), t, dtype=x.dtype, device=x.device))
            diffusion = norm * (1. - t)          # diffusion_form='sigma'
            score = (t * v - x) / (1. - t)   # the linear path's score from its velocity
            return v, v + diffusion * score, diffusion

        x = noise
        for t in grid[:-1]:
            _, drift, diffusion = velocity_and_drift(x, t)
            z = self._random(torch.randn, x.shape, x, generator)
            x = x + drift * dt + math.sqrt(2. * diffusion * dt) * z
            if bar is not None:
                bar.update()
        if last is not None:
            v, drift, _ = velocity_and_drift(x, t1)
            x = x + (drift if last == 'mean' else v) * size
            if bar is not None:
                bar.update()
        return x
