"""The frozen Stable Diffusion VAE that DiT / SiT (and their LLaMA variants) diffuse in.

:class:`StableDiffusionVAE` wraps ``diffusers.AutoencoderKL``: the network, its weights' key
names and the diagonal Gaussian posterior are diffusers' own, so the released
``stabilityai/sd-vae-ft-ema`` (or ``-ft-mse``) directory loads as it is. What this module adds is
the contract the generation model and ``tools/generation/extract_latents.py`` rely on:

* images (B, 3, H, W) in [-1, 1] -> moments (B, 8, H/8, W/8): the posterior's mean and log-variance,
  unscaled (what pre-extracted latents store, so a random latent can still be drawn per epoch);
* moments -> ``scale * z`` with ``z ~ N(mean, exp(logvar))`` (the diffusion space);
* ``scale * z`` -> images in [-1, 1].

It is frozen (no gradients, always in eval mode) and never downloads anything.
"""
import logging
import os.path as osp
from typing import Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log

from ...registry import MODELS

__all__ = ['StableDiffusionVAE', 'SD_VAE_CONFIG']

# stabilityai/sd-vae-ft-ema's config.json (also sd-vae-ft-mse's): 83,653,863 parameters
SD_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=('DownEncoderBlock2D', ) * 4,
    up_block_types=('UpDecoderBlock2D', ) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    act_fn='silu',
    latent_channels=4,
    norm_num_groups=32,
    sample_size=256)

_GET_WEIGHTS = ('There is no automatic download. On a machine with internet run e.g. '
                '`huggingface-cli download stabilityai/sd-vae-ft-ema --local-dir {path}` and '
                'copy the folder (config.json + diffusion_pytorch_model.safetensors) here.')
_TORCH_SUFFIXES = ('.bin', '.pt', '.pth', '.ckpt')


def _read_weights(path: str) -> dict:
    """One weights file -> a state dict (safetensors, or a torch file read with
    ``weights_only=True``; a top-level ``state_dict`` entry is unwrapped)."""
    if path.endswith('.safetensors'):
        from ...utils import read_safetensors  # a damaged file: one line naming it and the fault
        return read_safetensors(path)
    if not path.endswith(_TORCH_SUFFIXES):
        raise ValueError(f'StableDiffusionVAE: {path}: unknown weights format; expected a '
                         f'diffusers directory, a .safetensors file or one of {_TORCH_SUFFIXES}.')
    from ...compat import load_checkpoint_file
    state = load_checkpoint_file(path, map_location='cpu')
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict):
        raise ValueError(f'StableDiffusionVAE: {path} holds a {type(state).__name__}, not a '
                         'state dict.')
    return state


def _check_keys(state: dict, model: nn.Module, path: str) -> None:
    """One error naming every missing, unexpected and mis-shaped key of ``path``."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(f'{k}: {tuple(state[k].shape)} != {tuple(expected[k].shape)}'
                    for k in set(expected) & set(state)
                    if tuple(state[k].shape) != tuple(expected[k].shape))
    if not (missing or unexpected or shapes):
        return
    parts = [f'{name} ({len(keys)}): {", ".join(keys)}'
             for name, keys in (('missing', missing), ('unexpected', unexpected),
                                ('shape mismatch', shapes)) if keys]
    hint = ''
    if any(k.startswith(('encoder.down.', 'first_stage_model.')) for k in unexpected):
        hint = (' The file looks like an original (LDM) Stable Diffusion checkpoint; use the '
                'diffusers release of the VAE (a folder with config.json) instead.')
    raise ValueError(f'StableDiffusionVAE: the weights in {path} do not match the AutoencoderKL '
                     f'config: {"; ".join(parts)}.{hint}')


@MODELS.register_module()
class StableDiffusionVAE(nn.Module):
    """The frozen ``diffusers.AutoencoderKL`` of Stable Diffusion, in the diffusion's units.

    Args:
        path: Where the weights are: a diffusers directory (``config.json`` and
            ``diffusion_pytorch_model.safetensors`` / ``.bin``, e.g. a copy of
            ``stabilityai/sd-vae-ft-ema``; its config defines the architecture), or one weights
            file (``.safetensors``, ``.bin``, ``.pt``, ``.pth``, ``.ckpt``) with diffusers' key
            names for the architecture ``config``, loaded strictly. ``None`` keeps random weights
            (tests only; a warning is logged).
        scale: The latent scaling factor (0.18215 for SD's VAE): the diffusion sees ``scale * z``.
            It is this argument, not the directory's ``scaling_factor``, that counts.
        config: ``AutoencoderKL`` keyword arguments (default :data:`SD_VAE_CONFIG`, the
            sd-vae-ft-ema architecture); not allowed with a directory, whose ``config.json``
            defines the network.

    Attributes:
        latent_channels (int): ``C`` of the latents (4); moments have ``2C`` channels.
        downsample_factor (int): ``f`` = image size / latent size (8).
    """

    def __init__(self, path: Optional[str] = None, scale: float = 0.18215,
                 config: Optional[dict] = None):
        super().__init__()
        from diffusers import AutoencoderKL
        if path is not None:
            path = osp.expanduser(str(path))
            if not osp.exists(path):
                raise FileNotFoundError(f'StableDiffusionVAE: the VAE weights {path} do not '
                                        f'exist. {_GET_WEIGHTS.format(path=path)}')
        if path is not None and osp.isdir(path):
            if config is not None:
                raise ValueError(f'StableDiffusionVAE: config is given but {path} is a '
                                 'directory, whose config.json defines the architecture; drop '
                                 'config, or point path at the weights file.')
            if not osp.isfile(osp.join(path, 'config.json')):
                raise FileNotFoundError(f'StableDiffusionVAE: {path} has no config.json, so it '
                                        f'is not a diffusers AutoencoderKL directory. '
                                        f'{_GET_WEIGHTS.format(path=path)}')
            # low_cpu_mem_usage would need `accelerate` (not a requirement) and only warns without
            vae = AutoencoderKL.from_pretrained(path, local_files_only=True,
                                                low_cpu_mem_usage=False)
        else:
            vae = AutoencoderKL(**dict(SD_VAE_CONFIG if config is None else config))
            if path is None:
                print_log('StableDiffusionVAE: no path given, the VAE has random weights '
                          '(untrained: fine for tests, useless for generation).',
                          logger='current', level=logging.WARNING)
            else:
                state = _read_weights(path)
                _check_keys(state, vae, path)
                vae.load_state_dict(state, strict=True)
        self.vae = vae.requires_grad_(False)
        self.scale = float(scale)
        self.path = path
        self.latent_channels = int(vae.config.latent_channels)
        self.downsample_factor = 2**(len(vae.config.block_out_channels) - 1)
        super().train(False)

    def train(self, mode: bool = True) -> 'StableDiffusionVAE':
        """Stays in eval mode whatever ``mode`` is (the VAE is frozen)."""
        return super().train(False)

    def _check_images(self, x: torch.Tensor) -> None:
        f = self.downsample_factor
        in_ch = self.vae.config.in_channels
        if x.dim() != 4 or x.shape[1] != in_ch:
            raise ValueError(f'StableDiffusionVAE: expected images (B, {in_ch}, H, W) in [-1, 1], '
                             f'got shape {tuple(x.shape)}.')
        if x.shape[-2] % f or x.shape[-1] % f:
            raise ValueError(f'StableDiffusionVAE: the image size {tuple(x.shape[-2:])} must be '
                             f'divisible by the downsampling factor {f}.')

    @staticmethod
    def _own_precision(x: torch.Tensor):
        """Autocast off: the VAE runs in its parameters' dtype even inside a mixed-precision
        training step (the SD VAE's activations can overflow float16)."""
        return torch.autocast(device_type=x.device.type, enabled=False)

    def _dtype(self) -> torch.dtype:
        return self.vae.encoder.conv_in.weight.dtype

    @torch.no_grad()
    def encode_moments(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> posterior moments (B, 2C, H/f, W/f): the mean
        (first C channels) and log-variance (last C), unscaled and unclamped, float32."""
        self._check_images(x)
        with self._own_precision(x):
            return self.vae.encode(x.to(self._dtype())).latent_dist.parameters.float()

    @torch.no_grad()
    def sample_latents(self, moments: torch.Tensor,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Moments (B, 2C, h, w) -> ``scale * (mean + exp(logvar / 2) * eps)`` (B, C, h, w),
        float32; diffusers' posterior (log-variance clamped to [-30, 20]) draws ``eps`` with
        ``generator``."""
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
        if moments.dim() != 4 or moments.shape[1] != 2 * self.latent_channels:
            raise ValueError(f'StableDiffusionVAE: expected moments (B, '
                             f'{2 * self.latent_channels}, h, w), got {tuple(moments.shape)}.')
        return DiagonalGaussianDistribution(moments.float()).sample(generator) * self.scale

    @torch.no_grad()
    def encode(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> sampled, scaled latents (B, C, H/f, W/f)."""
        return self.sample_latents(self.encode_moments(x), generator)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, C, h, w) -> images (B, 3, h f, w f), float32, nominally in
        [-1, 1] but not clamped (the caller's conversion to uint8 clamps)."""
        if z.dim() != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(f'StableDiffusionVAE: expected scaled latents (B, '
                             f'{self.latent_channels}, h, w), got {tuple(z.shape)}.')
        with self._own_precision(z):
            return self.vae.decode((z / self.scale).to(self._dtype())).sample.float()

    def extra_repr(self) -> str:
        return f'path={self.path!r}, scale={self.scale}'
