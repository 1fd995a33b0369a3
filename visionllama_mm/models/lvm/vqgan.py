"""The LVM image tokenizer: the MUSE-style VQGAN the released LVM uses.

An image in [0, 1] (no mean/std, no [-1, 1] scaling) goes through a convolutional encoder that
halves the resolution ``len(channel_mult) - 1`` times (f = 16 for the released config), a 1x1
``quant_conv``, and a nearest-code lookup (squared L2, no normalisation, no EMA) into
``num_embeddings`` codes; the ids are read in raster order (row-major over the latent grid).
Decoding embeds the ids, applies ``post_quant_conv`` and a mirrored decoder (``num_res_blocks + 1``
ResBlocks per level, nearest 2x upsampling + 3x3 conv).

Parameter names are the released checkpoint's (``encoder.down.{i}.block.{j}.norm1``,
``encoder.mid.block_1``, ``quantize.embedding.weight``, ``decoder.up.{i}.upsample.conv``, ...), so
``Emma02/vqvae_ckpts`` (= ``VictorSanh/vqvae_ckpts``) loads after
:func:`load_muse_vqgan` (a key-by-key check, ``weights_only``). Written here rather than reused from
diffusers (``VQModel``): diffusers' encoder/decoder differ in names and in the downsampling pad
(MUSE pads (0, 1, 0, 1) before a stride-2 conv), so the released weights would not reproduce.

Quirks of the official code kept on purpose (they decide what the released weights compute):

* attention inside a down/up level runs only when the level holds **more than one** attention
  block (``len(attn) > 1``); with one ResBlock per level an enabled attention is built (its
  parameters exist) but skipped. The released config has no attention at all.
* the quantizer loss weights the commitment term (gradient to the encoder) by 1 and the codebook
  term by ``commitment_cost``: ``mean((sg(z_q) - z)^2) + beta * mean((z_q - sg(z))^2)``.

:class:`VQGANAutoEncoder` trains the tokenizer (the official repo has no tokenizer training code;
our objective is L1 + L2 reconstruction plus the quantizer loss, no perceptual or GAN term — an
own choice, documented in ``configs/lvm/README.md``).
"""
import json
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel, BaseModule
from mmengine.structures import BaseDataElement

from ...engine.pretrained import PretrainedInitMixin
from ...registry import MODELS
from ..utils import checkpoint_call, parse_arch

__all__ = ['VQGANTokenizer', 'VQGANAutoEncoder', 'load_muse_vqgan', 'MUSE_VQGAN_ARCH']

# the released checkpoint's config.json; not the MUSE constructor defaults
MUSE_VQGAN_ARCH = dict(resolution=256, num_channels=3, hidden_channels=128,
                       channel_mult=(1, 2, 2, 4, 6), num_res_blocks=2, attn_resolutions=(),
                       no_attn_mid_block=True, z_channels=64, quantized_embed_dim=64,
                       num_embeddings=8192, dropout=0.0, resample_with_conv=True,
                       commitment_cost=0.25)


def _group_norm(channels: int) -> nn.GroupNorm:
    if channels % 32:
        raise ValueError(f'VQGANTokenizer: every width must be a multiple of 32 (GroupNorm with '
                         f'32 groups); got {channels}. Check hidden_channels * channel_mult.')
    return nn.GroupNorm(32, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """GN -> SiLU -> conv3x3 -> GN -> SiLU -> dropout -> conv3x3, plus the input (through a 1x1
    ``nin_shortcut`` when the width changes). (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = (nn.Conv2d(in_channels, out_channels, 1)
                             if in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + (x if self.nin_shortcut is None else self.nin_shortcut(x))


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W positions with 1x1-conv q/k/v/proj_out and a
    residual; scale C^-0.5. (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x)
        q, k, v = (m(h).flatten(2).transpose(1, 2).unsqueeze(1) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, 1, HW, C)
        return x + self.proj_out(out.squeeze(1).transpose(1, 2).reshape(B, C, H, W))


class Downsample(nn.Module):
    """Pad (0, 1, 0, 1) then a 3x3 stride-2 conv (or 2x2 average pooling without conv)."""

    def __init__(self, channels: int, with_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2) if with_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return F.avg_pool2d(x, 2)
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest 2x upsampling, then a 3x3 conv (unless ``with_conv`` is off)."""

    def __init__(self, channels: int, with_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if with_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode='nearest')
        return x if self.conv is None else self.conv(x)


class Level(nn.Module):
    """One resolution level: ResBlocks (each followed by attention when the level holds more than
    one attention block, the official rule), then an optional down/upsampling."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, attn: bool,
                 dropout: float, resample: Optional[str], with_conv: bool):
        super().__init__()
        self.block = nn.ModuleList(
            ResnetBlock(in_channels if i == 0 else out_channels, out_channels, dropout)
            for i in range(depth))
        self.attn = nn.ModuleList(AttnBlock(out_channels) for _ in range(depth if attn else 0))
        if resample == 'down':
            self.downsample = Downsample(out_channels, with_conv)
        elif resample == 'up':
            self.upsample = Upsample(out_channels, with_conv)

    def forward(self, x: torch.Tensor, with_cp: bool = False) -> torch.Tensor:
        for i, block in enumerate(self.block):
            x = checkpoint_call(block, x, enabled=with_cp)
            if len(self.attn) > 1:  # official quirk: a single attention block is never run
                x = self.attn[i](x)
        if hasattr(self, 'downsample'):
            x = self.downsample(x)
        if hasattr(self, 'upsample'):
            x = self.upsample(x)
        return x


class MidBlock(nn.Module):
    """ResBlock -> (attention unless ``no_attn``) -> ResBlock at the lowest resolution."""

    def __init__(self, channels: int, no_attn: bool, dropout: float):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout)
        self.attn_1 = None if no_attn else AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block_1(x)
        if self.attn_1 is not None:
            x = self.attn_1(x)
        return self.block_2(x)


class Encoder(nn.Module):
    """(B, 3, H, W) -> (B, z_channels, H/f, W/f), f = 2 ** (len(channel_mult) - 1)."""

    def __init__(self, a: dict):
        super().__init__()
        ch, mult, n = a['hidden_channels'], tuple(a['channel_mult']), len(a['channel_mult'])
        self.conv_in = nn.Conv2d(a['num_channels'], ch, 3, padding=1)
        widths_in = (1, ) + mult
        res, levels = a['resolution'], []
        for i in range(n):
            levels.append(Level(ch * widths_in[i], ch * mult[i], a['num_res_blocks'],
                                res in a['attn_resolutions'], a['dropout'],
                                'down' if i != n - 1 else None, a['resample_with_conv']))
            res = res // 2 if i != n - 1 else res
        self.down = nn.ModuleList(levels)
        self.mid = MidBlock(ch * mult[-1], a['no_attn_mid_block'], a['dropout'])
        self.norm_out = _group_norm(ch * mult[-1])
        self.conv_out = nn.Conv2d(ch * mult[-1], a['z_channels'], 3, padding=1)

    def forward(self, x: torch.Tensor, with_cp: bool = False) -> torch.Tensor:
        x = self.conv_in(x)
        for level in self.down:
            x = level(x, with_cp)
        return self.conv_out(F.silu(self.norm_out(self.mid(x))))


class Decoder(nn.Module):
    """(B, z_channels, h, w) -> (B, 3, h*f, w*f). ``up[i]`` is level i (0 = full resolution) and
    runs from the last level to the first."""

    def __init__(self, a: dict):
        super().__init__()
        ch, mult, n = a['hidden_channels'], tuple(a['channel_mult']), len(a['channel_mult'])
        self.conv_in = nn.Conv2d(a['z_channels'], ch * mult[-1], 3, padding=1)
        self.mid = MidBlock(ch * mult[-1], a['no_attn_mid_block'], a['dropout'])
        res = a['resolution'] // 2**(n - 1)
        levels = {}
        for i in reversed(range(n)):
            levels[i] = Level(ch * mult[min(i + 1, n - 1)], ch * mult[i], a['num_res_blocks'] + 1,
                              res in a['attn_resolutions'], a['dropout'],
                              'up' if i != 0 else None, a['resample_with_conv'])
            res = res * 2 if i != 0 else res
        self.up = nn.ModuleList(levels[i] for i in range(n))
        self.norm_out = _group_norm(ch * mult[0])
        self.conv_out = nn.Conv2d(ch * mult[0], a['num_channels'], 3, padding=1)

    def forward(self, z: torch.Tensor, with_cp: bool = False) -> torch.Tensor:
        x = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            x = level(x, with_cp)
        return self.conv_out(F.silu(self.norm_out(x)))


class VectorQuantizer(nn.Module):
    """Nearest of ``num_embeddings`` codes by squared L2 (``|z|^2 + |e|^2 - 2 z.e``).

    ``forward(z (B, C, h, w))`` -> ``(z_q (B, C, h, w) with the straight-through gradient, ids
    (B, h*w) in raster order, loss)``.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, commitment_cost: float):
        super().__init__()
        self.commitment_cost = commitment_cost
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / num_embeddings, 1.0 / num_embeddings)

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> ids (B, h*w).

        The distances are computed in float32 whatever the autocast around the call: the squared
        norms of trained latents (hundreds per channel) overflow float16, and the ``-2 z.e`` term
        of nearby codes differs by less than a bfloat16 rounding step.
        """
        with torch.no_grad(), torch.autocast(z.device.type, enabled=False):
            flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).float()
            e = self.embedding.weight.float()
            dist = torch.addmm(flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1), flat, e.t(),
                               alpha=-2.0)
        return dist.argmin(1).view(z.shape[0], -1)

    def lookup(self, ids: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """ids (B, h*w) -> code vectors (B, C, h, w)."""
        return self.embedding(ids).view(ids.shape[0], hw[0], hw[1], -1).permute(0, 3, 1, 2)

    def forward(self, z: torch.Tensor):
        ids = self.codes(z)
        z_q = self.lookup(ids, z.shape[-2:]).to(z.dtype)
        loss = F.mse_loss(z, z_q.detach()) + self.commitment_cost * F.mse_loss(z_q, z.detach())
        return z + (z_q - z).detach(), ids, loss


@MODELS.register_module()
class VQGANTokenizer(PretrainedInitMixin, BaseModule):
    """MUSE-style VQGAN image tokenizer (the released LVM's ``vqvae_muse.py``).

    Args:
        arch (str | dict): ``'muse'`` (alias ``'lvm'``: the released tokenizer, 146,244,675
            parameters, f = 16, 8192 codes x 64) or a dict with keys of the released
            ``config.json`` (``resolution, num_channels, hidden_channels, channel_mult,
            num_res_blocks, attn_resolutions, no_attn_mid_block, z_channels, quantized_embed_dim,
            num_embeddings, dropout, resample_with_conv, commitment_cost``); missing keys take the
            released values. Every width must be a multiple of 32 (GroupNorm).
        frozen (bool): no gradients and always in eval mode (default; LVM's tokenizer is fixed).
            Set False to train it (:class:`VQGANAutoEncoder`).
        with_cp (bool): gradient checkpointing of the ResBlocks while training.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=..., prefix='tokenizer.')``.

    Shapes: ``encode`` (B, 3, H, W) in [0, 1] -> ids (B, (H/f)(W/f)), long, raster order;
    ``decode`` ids (B, h*w) -> (B, 3, h*f, w*f) in [0, 1] (square grid unless ``hw`` is given).
    """
    arch_zoo = {'muse': MUSE_VQGAN_ARCH, 'lvm': MUSE_VQGAN_ARCH}
    # the keys are the fields of the released config.json (not mmpretrain's names), so that a
    # checkpoint's config reads as it is; every key is optional (the released value)
    arch_optional = MUSE_VQGAN_ARCH

    def __init__(self, arch: Union[str, dict] = 'muse', frozen: bool = True, with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        arch = parse_arch(arch, self.arch_zoo, optional=self.arch_optional,
                          owner='VQGANTokenizer')
        arch = dict(arch, channel_mult=tuple(arch['channel_mult']),
                    attn_resolutions=tuple(arch['attn_resolutions']))
        if not isinstance(arch['num_embeddings'], int) or arch['num_embeddings'] < 2:
            # one code maps every image to the same ids: nothing to model, nothing to decode
            raise ValueError(f'VQGANTokenizer: arch num_embeddings (the codebook size) must be an '
                             f'int >= 2, got {arch["num_embeddings"]!r}.')
        if arch['num_res_blocks'] == 0 and set(arch['channel_mult']) != {1}:
            # only an encoder level's ResBlocks change its width: without them the widths
            # hidden_channels * channel_mult are never reached (the official code fails the same
            # way, with a shape error inside the encoder)
            raise ValueError(f'VQGANTokenizer: arch num_res_blocks=0 needs channel_mult of ones '
                             f'(the encoder changes width only in its ResBlocks); got '
                             f'channel_mult={arch["channel_mult"]}.')
        if not arch['commitment_cost'] >= 0:
            raise ValueError(f'VQGANTokenizer: arch commitment_cost must be >= 0, got '
                             f'{arch["commitment_cost"]!r}.')
        self.arch = arch
        self.resolution = arch['resolution']
        self.num_embeddings = arch['num_embeddings']
        self.downsample_factor = 2**(len(arch['channel_mult']) - 1)
        self.frozen = frozen
        self.with_cp = with_cp
        self.encoder = Encoder(arch)
        self.decoder = Decoder(arch)
        self.quant_conv = nn.Conv2d(arch['z_channels'], arch['quantized_embed_dim'], 1)
        self.quantize = VectorQuantizer(arch['num_embeddings'], arch['quantized_embed_dim'],
                                        arch['commitment_cost'])
        self.post_quant_conv = nn.Conv2d(arch['quantized_embed_dim'], arch['z_channels'], 1)
        if frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True):
        return super().train(mode and not self.frozen)

    def tokens_per_image(self, hw: Sequence[int] = None) -> int:
        H, W = hw if hw is not None else (self.resolution, self.resolution)
        self._check_hw(H, W)
        return (H // self.downsample_factor) * (W // self.downsample_factor)

    def _check_hw(self, H: int, W: int) -> None:
        f = self.downsample_factor
        if H % f or W % f:
            raise ValueError(f'VQGANTokenizer: image size {H}x{W} is not a multiple of the '
                             f'downsampling factor {f}.')

    def _check_images(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != self.arch['num_channels']:
            raise ValueError(f'VQGANTokenizer: expected images (B, {self.arch["num_channels"]}, '
                             f'H, W), got shape {tuple(images.shape)}.')
        if not images.is_floating_point():
            raise ValueError(f'VQGANTokenizer: expected float images in [0, 1], got '
                             f'{images.dtype} (divide uint8 pixels by 255).')
        self._check_hw(*images.shape[-2:])
        if torch.compiler.is_compiling():
            return  # the range check reads values back to the host; a compiled encode skips it
        lo, hi = images.aminmax()
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(f'VQGANTokenizer: pixels must lie in [0, 1] (the released tokenizer '
                             f'takes no mean/std); got values in [{lo:.3g}, {hi:.3g}].')

    def latents(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> unquantized latents (B, C, h, w) (encoder + ``quant_conv``)."""
        return self.quant_conv(self.encoder(images, self.with_cp and self.training))

    def encode_latents(self, images: torch.Tensor):
        """(B, 3, H, W) in [0, 1] -> (z_q (B, C, h, w) straight-through, ids (B, h*w), loss)."""
        return self.quantize(self.latents(images))

    def decode_latents(self, z_q: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) code vectors -> raw reconstruction (B, 3, h*f, w*f), not clamped."""
        return self.decoder(self.post_quant_conv(z_q), self.with_cp and self.training)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) floats in [0, 1] -> ids (B, (H/f)(W/f)) in raster order.

        The ids are data, so they are computed in float32 whatever the autocast around the call
        (a model trained under AMP then sees the ids ``tools/lvm/tokenize_sentences.py`` writes):
        with the encoder under bfloat16 autocast about 2% of the ids of a tiny VQGAN changed,
        even with float32 distances. :meth:`encode_latents` (tokenizer training) follows the
        autocast; only its distances are float32.
        """
        self._check_images(images)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen), \
                torch.autocast(images.device.type, enabled=False):
            return self.quantize.codes(self.latents(images.float()))

    def decode(self, ids: torch.Tensor, hw: Optional[Sequence[int]] = None,
               clamp: bool = True) -> torch.Tensor:
        """ids (B, h*w) -> images (B, 3, h*f, w*f), clamped to [0, 1] as the official callers do.
        ``hw`` is the latent grid (default: square)."""
        if ids.dim() != 2:
            raise ValueError(f'VQGANTokenizer.decode: expected ids (B, N), got shape '
                             f'{tuple(ids.shape)}.')
        n = ids.shape[1]
        if hw is None:
            side = math.isqrt(n)
            if side * side != n:
                raise ValueError(f'VQGANTokenizer.decode: {n} ids per image are not a square '
                                 'grid; pass hw=(h, w).')
            hw = (side, side)
        if hw[0] * hw[1] != n:
            raise ValueError(f'VQGANTokenizer.decode: hw={tuple(hw)} does not hold {n} ids.')
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f'VQGANTokenizer.decode: ids must lie in [0, {self.num_embeddings}); '
                             f'got [{int(ids.min())}, {int(ids.max())}].')
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.decode_latents(self.quantize.lookup(ids, hw))
        return out.clamp(0, 1) if clamp else out

    def forward(self, images: torch.Tensor):
        """(B, 3, H, W) in [0, 1] -> (raw reconstruction, ids, quantizer loss)."""
        z_q, ids, loss = self.encode_latents(images)
        return self.decode_latents(z_q), ids, loss


def load_muse_vqgan(src: str, strict: bool = True) -> Dict[str, torch.Tensor]:
    """Read a released MUSE VQGAN (a directory with ``config.json`` and ``pytorch_model.bin`` or
    ``model.safetensors``, or the weights file itself; read by
    :func:`visionllama_mm.utils.read_state_dict`) and check it key by key and shape by shape
    against :class:`VQGANTokenizer` built from its config.

    Returns the state dict in our layout (the same names). Raises ``ValueError`` naming the
    missing/unexpected/mis-shaped keys.
    """
    folder = src if osp.isdir(src) else osp.dirname(src)
    arch = dict(MUSE_VQGAN_ARCH)
    cfg_file = osp.join(folder, 'config.json')
    if osp.isfile(cfg_file):
        with open(cfg_file) as f:
            config = json.load(f)
        arch.update({k: v for k, v in config.items() if k in MUSE_VQGAN_ARCH})
    from ...utils.checkpoint_io import checkpoint_files, read_state_dict
    try:
        index, files = checkpoint_files(src)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from err
    state = read_state_dict(src)
    state = state.get('state_dict', state)
    src = index or files[0]
    with torch.device('meta'):
        own = VQGANTokenizer(arch).state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f'{k}: {tuple(state[k].shape)} vs ours {tuple(own[k].shape)}'
                    for k in set(own) & set(state) if state[k].shape != own[k].shape)
    if strict and (missing or unexpected or shapes):
        raise ValueError(f'{src} is not a MUSE VQGAN of config {cfg_file}: missing keys '
                         f'{missing[:8]} ({len(missing)}), unexpected keys {unexpected[:8]} '
                         f'({len(unexpected)}), other shapes {shapes[:8]}.')
    return {k: state[k] for k in own if k in state}


@MODELS.register_module()
class VQGANAutoEncoder(PretrainedInitMixin, BaseModel):
    """Trains a :class:`VQGANTokenizer` (not frozen) with L1 + L2 reconstruction and the
    quantizer's codebook/commitment loss (our own objective: the LVM release has no tokenizer
    training code).

    ``inputs``: images (B, 3, H, W) in [0, 1] (a data preprocessor with mean 0 / std 255).
    Modes: ``loss`` -> ``{loss_l1, loss_l2, loss_vq}``; ``predict`` -> data samples with
    ``pred_img`` (B, 3, H, W) clamped to [0, 1], ``gt_img`` and ``psnr`` (dB, per image);
    ``tensor`` -> the raw reconstruction.

    Args:
        tokenizer (dict): the ``VQGANTokenizer`` config; ``frozen`` is forced off.
        l1_weight / l2_weight / vq_weight (float): loss weights.
        restart_idle_codes (int): a code that no latent has chosen for this many training steps
            is moved onto a latent of the current batch (drawn at random; the same on every rank)
            and its idle count starts again. 0 (default) keeps the plain VQ-VAE codebook update,
            under which most of a small codebook can stay unused: the tiny sample-photo tokenizer
            used 37 of its 256 codes after 300 steps. The idle counts are the buffer
            ``code_idle_steps`` (saved, so a resumed run goes on counting). The restart is tensor
            work inside the training forward (no host sync; one all-reduce and one broadcast per
            step when distributed).
    """

    def __init__(self, tokenizer: dict, l1_weight: float = 1.0, l2_weight: float = 1.0,
                 vq_weight: float = 1.0, restart_idle_codes: int = 0,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        if not isinstance(restart_idle_codes, int) or restart_idle_codes < 0:
            raise ValueError(f'VQGANAutoEncoder: restart_idle_codes must be an int >= 0 (training '
                             f'steps; 0 = off), got {restart_idle_codes!r}.')
        weights = dict(l1_weight=l1_weight, l2_weight=l2_weight, vq_weight=vq_weight)
        negative = {k: v for k, v in weights.items() if not v >= 0}
        if negative or l1_weight + l2_weight == 0:
            # without a reconstruction term the decoder is never trained (and a negative weight
            # maximises its term)
            raise ValueError(f'VQGANAutoEncoder: the loss weights must be >= 0 with l1_weight + '
                             f'l2_weight > 0 (a reconstruction term), got {weights}.')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
        self.tokenizer = MMPRETRAIN_MODELS.build(dict(tokenizer, frozen=False))
        self.weights = dict(l1=l1_weight, l2=l2_weight, vq=vq_weight)
        self.restart_idle_codes = restart_idle_codes
        if restart_idle_codes:
            self.register_buffer('code_idle_steps',
                                 torch.zeros(self.tokenizer.num_embeddings, dtype=torch.long))

    @torch.no_grad()
    def _restart_idle_codes(self, z: torch.Tensor, ids: torch.Tensor) -> None:
        """Count the steps since each code was last chosen (``ids`` (B, h*w) of this step) and
        move the codes idle for ``restart_idle_codes`` steps onto random latents of ``z``
        (B, C, h, w)."""
        from mmengine.dist import all_reduce, broadcast, is_distributed
        weight = self.tokenizer.quantize.embedding.weight
        ids = ids.flatten()
        used = ids.new_zeros(weight.shape[0]).index_add_(0, ids, torch.ones_like(ids))
        latents = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        picks = latents[torch.randint(0, latents.shape[0], (weight.shape[0], ),
                                      device=latents.device)].to(weight.dtype)
        if is_distributed():
            all_reduce(used)  # a code is used when any rank chose it
            broadcast(picks, 0)  # every rank moves a code to the same latent
        idle = torch.where(used > 0, 0, self.code_idle_steps + 1)
        dead = idle >= self.restart_idle_codes
        weight.copy_(torch.where(dead[:, None], picks, weight))
        self.code_idle_steps.copy_(torch.where(dead, 0, idle))

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List] = None,
                mode: str = 'tensor'):
        if mode not in ('loss', 'predict', 'tensor'):
            raise ValueError(f'VQGANAutoEncoder: mode must be loss, predict or tensor; got {mode!r}.')
        if mode == 'loss':
            tok = self.tokenizer
            z = tok.latents(inputs)
            z_q, ids, vq = tok.quantize(z)
            recon = tok.decode_latents(z_q)
            if self.restart_idle_codes:
                self._restart_idle_codes(z, ids)
            return dict(loss_l1=self.weights['l1'] * F.l1_loss(recon, inputs),
                        loss_l2=self.weights['l2'] * F.mse_loss(recon, inputs),
                        loss_vq=self.weights['vq'] * vq)
        recon, ids, _ = self.tokenizer(inputs)
        if mode == 'tensor':
            return recon
        recon = recon.detach().clamp(0, 1)
        mse = (recon.float() - inputs.float()).pow(2).flatten(1).mean(1)
        psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
        samples = data_samples if data_samples is not None else [
            BaseDataElement() for _ in range(inputs.shape[0])]
        out = []
        for i, sample in enumerate(samples):
            sample = sample if isinstance(sample, BaseDataElement) else BaseDataElement()
            sample.set_field(recon[i], 'pred_img', field_type='data')
            sample.set_field(float(psnr[i]), 'psnr', field_type='metainfo')
            sample.set_field(ids[i], 'pred_ids', field_type='data')
            out.append(sample)
        return out
