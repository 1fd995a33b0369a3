"""Class-conditional image generation in mmengine: denoiser + objective (+ frozen VAE).

:class:`ClassConditionalDiffusion` is what ``tools/train.py`` trains and ``tools/test.py`` samples:

* ``mode='loss'``: images (B, 3, H, W) from :class:`GenerationDataPreprocessor` in [-1, 1] are
  encoded by the VAE into scaled latents (or, with ``latent_input=True``, pre-extracted VAE
  moments (B, 8, h, w) are sampled; without a VAE the pixels themselves are the diffusion space),
  and the objective (:class:`GaussianDiffusion`, DDPM; :class:`FlowMatching`, SiT) returns its
  losses.
* ``mode='predict'``: the labels of the data samples (e.g. from :class:`ClassLabelDataset`)
  condition the sampler (classifier-free guidance when ``cfg_scale != 1``); each data sample gets
  ``pred_img``, uint8 (3, H, W), converted as DiT's sampler does (``clamp(127.5 x + 128)``).
* ``mode='tensor'``: the generated images as float (B, 3, H, W) in [-1, 1].

The VAE is kept out of the module tree on purpose: it is frozen, loaded from its own file, and would
otherwise add 84M parameters to every checkpoint, to the EMA copy and to DDP's buckets.
"""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample

from ...engine.pretrained import PretrainedInitMixin
from ...registry import MODELS

__all__ = ['ClassConditionalDiffusion', 'GenerationDataPreprocessor']


@MODELS.register_module()
class GenerationDataPreprocessor(BaseDataPreprocessor):
    """Stacks a batch and maps uint8 images to [-1, 1]; float inputs (VAE moments) pass as they are.

    ``to_rgb``: mmcv's ``LoadImageFromFile`` gives BGR; the SD VAE (and any released model) expects
    RGB, so uint8 images have their channels reversed first.

    mmpretrain's ``ClsDataPreprocessor`` is not used: its normalisation is written for 3-channel
    images, and pre-extracted moments (8 channels) must not be normalised at all.
    """

    def __init__(self, to_rgb: bool = True):
        super().__init__()
        self.to_rgb = to_rgb

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise ValueError('GenerationDataPreprocessor: got an empty batch.')
            shapes = {tuple(t.shape) for t in inputs}
            if len(shapes) > 1:
                raise ValueError(f'GenerationDataPreprocessor: inputs of different shapes '
                                 f'{sorted(shapes)}; crop or resize the images to one size.')
            inputs = torch.stack(list(inputs))
        if inputs.dtype == torch.uint8:
            if self.to_rgb and inputs.shape[1] == 3:
                inputs = inputs.flip(1)
            inputs = inputs.float() / 127.5 - 1.
        else:
            inputs = inputs.float()
        return dict(inputs=inputs, data_samples=data.get('data_samples'))


def _build(cfg: Union[dict, nn.Module, object]):
    return MMPRETRAIN_MODELS.build(cfg) if isinstance(cfg, dict) else cfg


@MODELS.register_module()
class ClassConditionalDiffusion(PretrainedInitMixin, BaseModel):
    """A class-conditional diffusion / flow model (DiT, DiT-LLaMA, SiT, SiT-LLaMA).

    Args:
        denoiser: The network, e.g. ``dict(type='DiTLLaMA', arch='xl', patch_size=2)``; called as
            ``denoiser(x_t, t, y)`` and ``denoiser.forward_with_cfg(x_t, t, y, scale, k)``.
        objective: ``dict(type='GaussianDiffusion', ...)`` or ``dict(type='FlowMatching', ...)``:
            ``loss(model_fn, x0)`` and ``sample(model_fn, noise, generator)``.
        vae: ``dict(type='StableDiffusionVAE', path=..., scale=0.18215)``; ``None`` trains and
            samples in pixel space (the denoiser's ``in_channels`` must then be 3).
        latent_input: The dataset yields pre-extracted VAE moments (``LatentDataset``), not
            images. Needs ``vae`` (its scale, and its decoder for sampling).
        cfg_scale: Classifier-free guidance scale when sampling; 1.0 samples the conditional
            model alone (one forward per step).
        guided_channels: Leading noise channels that are guided (3 in the official DiT/SiT
            samplers, whose FIDs use it; ``None`` guides all of them).
        sample_seed: Seed of the sampling noise: a batch's noise is drawn from
            ``sample_seed + sample_idx`` of its first sample, so a run is reproducible for a given
            batch size and world size.
        progress: Show a progress bar over sampling steps.
    """

    def __init__(self,
                 denoiser: dict,
                 objective: dict,
                 vae: Optional[dict] = None,
                 latent_input: bool = False,
                 cfg_scale: float = 1.0,
                 guided_channels: Optional[int] = 3,
                 sample_seed: int = 0,
                 progress: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='GenerationDataPreprocessor')
        super().__init__(data_preprocessor=_build(data_preprocessor), init_cfg=init_cfg)
        self.denoiser = _build(denoiser)
        self.objective = _build(objective)
        in_ch = self.denoiser.in_channels
        if vae is None:
            if latent_input:
                raise ValueError('ClassConditionalDiffusion: latent_input=True needs the vae '
                                 '(its scale for the latents and its decoder for sampling).')
            if in_ch != 3:
                raise ValueError(f'ClassConditionalDiffusion: without a vae the model works in '
                                 f'pixel space, so the denoiser needs in_channels=3, not {in_ch}.')
        if cfg_scale < 1.0:
            raise ValueError(f'ClassConditionalDiffusion: cfg_scale must be >= 1, got {cfg_scale}.')
        if guided_channels is not None and not 0 < guided_channels <= in_ch:
            raise ValueError(f'ClassConditionalDiffusion: guided_channels must be in [1, {in_ch}] '
                             f'or None, got {guided_channels}.')
        # a tuple hides the frozen VAE from state_dict(), parameters(), EMA and DDP (see above)
        self._vae = (_build(vae),) if vae is not None else None
        if self._vae is not None and self.vae.latent_channels != in_ch:
            raise ValueError(f'ClassConditionalDiffusion: the vae has {self.vae.latent_channels} '
                             f'latent channels but the denoiser in_channels={in_ch}.')
        self.latent_input = latent_input
        self.cfg_scale, self.guided_channels = cfg_scale, guided_channels
        self.sample_seed, self.progress = sample_seed, progress

    @property
    def vae(self) -> Optional[nn.Module]:
        """The frozen VAE, moved to the denoiser's device on access (``None`` in pixel space)."""
        if self._vae is None:
            return None
        vae = self._vae[0]
        device = next(self.denoiser.parameters()).device
        if next(vae.parameters()).device != device:
            vae.to(device)
        return vae

    # ------------------------------------------------------------------ training
    def _targets(self, inputs: torch.Tensor) -> torch.Tensor:
        """Batch -> the diffusion space: scaled latents (B, 4, h, w) or pixels (B, 3, H, W)."""
        if self.latent_input:
            if inputs.dim() != 4 or inputs.shape[1] != 2 * self.denoiser.in_channels:
                raise ValueError(f'ClassConditionalDiffusion: latent_input expects VAE moments '
                                 f'(B, {2 * self.denoiser.in_channels}, h, w), got '
                                 f'{tuple(inputs.shape)}; were the latents extracted with '
                                 'tools/generation/extract_latents.py?')
            return self.vae.sample_latents(inputs)
        if inputs.dim() != 4 or inputs.shape[1] != 3:
            raise ValueError(f'ClassConditionalDiffusion: expected images (B, 3, H, W), got '
                             f'{tuple(inputs.shape)}.')
        return self.vae.encode(inputs) if self._vae is not None else inputs

    @staticmethod
    def _labels(data_samples, device) -> torch.Tensor:
        if not data_samples or any('gt_label' not in s for s in data_samples):
            raise ValueError('ClassConditionalDiffusion: every data sample needs a gt_label '
                             '(the class to condition on).')
        return torch.cat([s.gt_label.reshape(-1)[:1] for s in data_samples]).long().to(device)

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        x0 = self._targets(inputs)
        if tuple(x0.shape[-2:]) != (self.denoiser.input_size, ) * 2:
            raise ValueError(f'ClassConditionalDiffusion: the denoiser was built for '
                             f'{self.denoiser.input_size}x{self.denoiser.input_size} inputs, the '
                             f'batch gives {tuple(x0.shape[-2:])} (after the vae, if any).')
        y = self._labels(data_samples, x0.device)
        return self.objective.loss(lambda x_t, t: self.denoiser(x_t, t, y), x0)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def generate(self, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Class labels (B,) -> images (B, 3, H, W) in [-1, 1] (not clamped)."""
        d = self.denoiser
        g = torch.Generator(device=labels.device).manual_seed(int(seed))
        noise = torch.randn((len(labels), d.in_channels, d.input_size, d.input_size),
                            generator=g, device=labels.device)
        if self.cfg_scale == 1.0:
            model_fn = lambda x, t: d(x, t, labels)  # noqa: E731
        else:
            model_fn = lambda x, t: d.forward_with_cfg(  # noqa: E731
                x, t, labels, self.cfg_scale, self.guided_channels)
        z = self.objective.sample(model_fn, noise, generator=g, progress=self.progress)
        return self.vae.decode(z) if self._vae is not None else z

    @staticmethod
    def to_uint8(images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] floats -> uint8, as DiT's sampler does: ``clamp(127.5 x + 128, 0, 255)``."""
        return (127.5 * images.float() + 128.).clamp(0, 255).to(torch.uint8)

    def _first_index(self, data_samples) -> int:
        return int(data_samples[0].metainfo.get('sample_idx', 0))

    def predict(self, inputs, data_samples: List[DataSample]) -> List[DataSample]:
        labels = self._labels(data_samples, inputs.device)
        images = self.to_uint8(self.generate(labels, self.sample_seed + self._first_index(
            data_samples))).cpu()
        for sample, img in zip(data_samples, images):
            sample.set_field(img, 'pred_img', dtype=torch.Tensor)
        return data_samples

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode in ('predict', 'tensor'):
            return self._sample(inputs, data_samples, mode)
        raise ValueError(f'ClassConditionalDiffusion: invalid mode {mode!r}; expected "loss", '
                         '"predict" or "tensor".')

    @torch.compiler.disable
    def _sample(self, inputs, data_samples: List[DataSample], mode: str):
        """``mode='predict'`` / ``'tensor'``. Never traced by ``torch.compile``: the sampling
        loop runs in Python (a traced loop would unroll every step into one graph); under
        :meth:`compile` the denoiser it calls is compiled by itself."""
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        labels = self._labels(data_samples, inputs.device)
        return self.generate(labels, self.sample_seed + self._first_index(data_samples))

    def compile(self, *args, **kwargs) -> None:
        """``torch.compile`` for training and sampling; mmengine's ``compile=True`` (and
        ``tools/train.py --compile``) calls it with the config's options.

        Training: the loss forward (``mode='loss'``: the VAE encoding if there is one, the
        objective's random timesteps and noise, the denoiser and the loss terms) becomes one
        graph, as with :meth:`torch.nn.Module.compile`. Sampling (``mode='predict'`` /
        ``'tensor'``, :meth:`generate`): the loop stays in Python and calls the denoiser, which is
        compiled by itself; the timesteps reach it as tensors, so all steps share one graph per
        batch shape (no recompilation per step). The guidance arithmetic, the sampler's update
        and the VAE decoding run eagerly. Random ops inside the compiled loss draw from
        inductor's own generator unless ``options={'fallback_random': True}``.
        """
        super().compile(*args, **kwargs)
        self.denoiser.compile(*args, **kwargs)
