"""2D rotary position embedding (2D RoPE) and its auto-scaled form (AS2DRoPE).

Layout (VisionLLaMA, spec §2.1): the first ``d_r = rope_ratio * head_dim`` channels of each head
are rotated; adjacent channels ``(2p, 2p + 1)`` form one complex number (LLaMA's interleaved
pairing). With ``K = d_r / 4`` frequencies ``w_k = theta ** (-4k / d_r)`` the pair ``2k`` turns by
``x * w_k`` and the pair ``2k + 1`` by ``y * w_k``: both axes share the frequencies, and every head
shares one table.

AS2DRoPE (spec §2.2): positions are multiplied by ``anchor / grid`` per axis, so a model trained on
an ``anchor_h x anchor_w`` token grid sees interpolated positions at any other input size. With the
anchor equal to the grid this is exactly plain 2D RoPE.

The rotation is done with real cos/sin tables in float32 (bf16/fp16-safe, no complex tensors) and
the tables are cached per (grid, device).
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

__all__ = ['RotaryEmbedding2D', 'apply_rope', 'grid_positions']

RopeTable = Tuple[torch.Tensor, torch.Tensor]


def grid_positions(height: int, width: int, device=None) -> torch.Tensor:
    """Raster-order (x, y) positions of an ``height x width`` grid.

    Returns:
        Tensor of shape (height * width, 2): column ``x = n mod W`` and row ``y = n div W``.
    """
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing='ij')
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)


def apply_rope(x: torch.Tensor, rope: RopeTable) -> torch.Tensor:
    """Rotate the leading channels of ``x`` by the angles whose cos/sin are given.

    Args:
        x: (B, num_heads, N, head_dim) queries or keys.
        rope: ``(cos, sin)``, each of shape (N, d_r / 2) or (B, N, d_r / 2) (per-sample
            positions, e.g. the visible tokens of MAE); ``d_r <= head_dim``.

    Returns:
        Tensor of the same shape and dtype as ``x``; channels past ``d_r`` are unchanged.
    """
    cos, sin = rope
    d_r = cos.shape[-1] * 2
    if cos.dim() == 3:  # per-sample table -> broadcast over heads
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    rot = x[..., :d_r].float().unflatten(-1, (-1, 2))
    a, b = rot.unbind(-1)
    rotated = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)
    rotated = rotated.to(x.dtype)
    if d_r == x.shape[-1]:
        return rotated
    return torch.cat([rotated, x[..., d_r:]], dim=-1)


class RotaryEmbedding2D(nn.Module):
    """Cos/sin tables of 2D RoPE for a token grid, cached per grid shape.

    Args:
        head_dim: Channels per attention head.
        ratio: Fraction of ``head_dim`` that is rotated (``d_r = ratio * head_dim``, multiple of 4).
        theta: Base of the frequencies.
        anchor: Token grid ``(H, W)`` (or one int) of the training resolution. If given, positions
            are scaled by ``anchor / grid`` per axis (AS2DRoPE); ``None`` means plain 2D RoPE.
    """

    def __init__(self,
                 head_dim: int,
                 ratio: float = 1.0,
                 theta: float = 10000.,
                 anchor: Optional[Union[int, Sequence[int]]] = None):
        super().__init__()
        d_r = int(head_dim * ratio)
        if d_r <= 0 or d_r % 4 != 0:
            raise ValueError(
                f'RotaryEmbedding2D: the rotated dim head_dim*ratio = {head_dim}*{ratio} = {d_r} '
                'must be a positive multiple of 4 (two axes x complex pairs).')
        self.head_dim = head_dim
        self.rot_dim = d_r
        self.theta = float(theta)
        if isinstance(anchor, int):
            anchor = (anchor, anchor)
        self.anchor = tuple(anchor) if anchor is not None else None
        freqs = theta**(-torch.arange(0, d_r, 4, dtype=torch.float32) / d_r)
        self.register_buffer('freqs', freqs, persistent=False)  # (d_r / 4,)
        self._cache: Dict[tuple, RopeTable] = {}

    def extra_repr(self) -> str:
        return (f'head_dim={self.head_dim}, rot_dim={self.rot_dim}, theta={self.theta}, '
                f'anchor={self.anchor}')

    def scale(self, height: int, width: int) -> Tuple[float, float]:
        """Per-axis position scale ``(s_x, s_y)``: ``anchor / grid`` for AS2DRoPE, else 1."""
        if self.anchor is None:
            return 1.0, 1.0
        return self.anchor[1] / width, self.anchor[0] / height

    def angles(self, positions: torch.Tensor) -> torch.Tensor:
        """Rotation angles for (..., 2) positions ``(x, y)`` -> (..., d_r / 2)."""
        freqs = self.freqs.to(positions.device)
        ax = positions[..., 0:1].float() * freqs
        ay = positions[..., 1:2].float() * freqs
        return torch.stack([ax, ay], dim=-1).flatten(-2)  # [x w0, y w0, x w1, y w1, ...]

    def table(self, positions: torch.Tensor) -> RopeTable:
        """Uncached cos/sin for arbitrary (already scaled) positions of shape (..., 2)."""
        ang = self.angles(positions)
        return ang.cos(), ang.sin()

    def forward(self, height: int, width: int, extra_positions: Optional[torch.Tensor] = None,
                device=None) -> RopeTable:
        """Cos/sin tables for an ``height x width`` token grid (raster order).

        Args:
            height, width: Token grid.
            extra_positions: Optional (E, 2) unscaled positions of tokens placed before the grid
                (e.g. the class token); they are scaled like the grid.
            device: Device of the tables (default: the module's).

        Returns:
            ``(cos, sin)``, each (E + height * width, d_r / 2), float32. Cached per call signature.
        """
        device = torch.device(device) if device is not None else self.freqs.device
        extra_key = None if extra_positions is None else tuple(extra_positions.flatten().tolist())
        # tables made under inference_mode cannot be saved for backward later: keep them apart
        key = (height, width, extra_key, device, torch.is_inference_mode_enabled())
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        pos = grid_positions(height, width, device=device)
        if extra_positions is not None:
            pos = torch.cat([extra_positions.to(device=device, dtype=pos.dtype), pos], dim=0)
        s_x, s_y = self.scale(height, width)
        pos = pos * pos.new_tensor([s_x, s_y])
        with torch.autocast(device_type=device.type, enabled=False):
            out = self.table(pos)
        self._cache[key] = out
        return out

    def _apply(self, fn, *args, **kwargs):
        # moving the module (``.to``/``.cuda``) invalidates the cached tables
        self._cache = {}
        return super()._apply(fn, *args, **kwargs)
