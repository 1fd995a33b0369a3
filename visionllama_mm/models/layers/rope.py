"""Rotary position embedding for 1-D sequences and 2-D token grids, with AS2DRoPE scaling.

One module serves every family: plain and pyramid VisionLLaMA (2-D grids, windows, GSA keys),
ViTDet windows, DiT latents (2-D), and LLaMA decoders (1-D, with an offset for KV-cache decoding).

Layout (VisionLLaMA, paper §3.3): the first ``d_r = ratio * head_dim`` channels of each head are
rotated, in complex pairs. ``pairing='interleaved'`` pairs channels ``(2p, 2p + 1)`` (LLaMA /
VisionLLaMA / EasyLM); ``pairing='half'`` pairs ``(p, p + d_r/2)`` (the ``rotate_half`` convention
of transformers' LLaMA). Frequencies:

* 2-D: ``K = d_r/4`` frequencies ``w_k = theta ** (-4k / d_r)``; the pair angles are
  ``[x w_0, y w_0, x w_1, y w_1, ...]`` (both axes share the frequencies, every head shares one
  table);
* 1-D: ``d_r/2`` frequencies ``w_k = theta ** (-2k / d_r)``, pair angle ``p w_k``.

AS2DRoPE (paper §3.3): with an ``anchor`` grid, positions are multiplied by ``anchor / grid``
(``scale_axes='xy'``: per axis, Eq. 4; ``'y'``: both axes by ``anchor_h / H``, what the released
pyramid seg/det code computes). With the grid equal to the anchor this is plain 2D RoPE.

Tables are float32 ``(cos, sin)`` pairs of shape (N, d_r/2), built once per shape and kept in a
bounded LRU cache (``cache_size`` entries) keyed by the shape, the extra rows, the device and
whether inference mode is on (inference tensors cannot be saved for backward later). Inside a
``torch.compile`` graph the cache is bypassed: the table is computed in the graph, where it fuses.
"""
from collections import OrderedDict
from typing import Callable, Hashable, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

__all__ = ['RotaryEmbedding', 'RopeTable', 'HalfRopeTable', 'apply_rope', 'grid_positions']


class RopeTable(NamedTuple):
    """``(cos, sin)`` of the rotation angles, each (..., N, d_r/2) float32, for interleaved
    channel pairs; :class:`HalfRopeTable` is the same for ``rotate_half`` pairs."""

    cos: torch.Tensor
    sin: torch.Tensor
    interleaved = True  # the pairing, a class attribute (not a tuple field)

    def rows(self, index: torch.Tensor) -> 'RopeTable':
        """The rows ``index`` (any integer shape, e.g. (B, N_keep)) -> (*index.shape, d_r/2)."""
        return type(self)(self.cos[index], self.sin[index])


class HalfRopeTable(RopeTable):
    """A :class:`RopeTable` for channel pairs ``(p, p + d_r/2)``."""

    __slots__ = ()
    interleaved = False


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


def apply_rope(x: torch.Tensor, rope: Union[RopeTable, Tuple[torch.Tensor, torch.Tensor]],
               inner_dims: int = 0) -> torch.Tensor:
    """Rotate the leading ``d_r`` channels of ``x`` by a RoPE table.

    Args:
        x: (..., N, *inner, D) tokens; ``inner_dims`` axes (e.g. heads, or q/k and heads) sit
            between the token axis and the channels. The classic layout (B, heads, N, D) has
            ``inner_dims=0``; (B, N, heads, D) has 1; a fused (B, N, 2, heads, D) q/k pair has 2.
        rope: ``(cos, sin)`` of shape (N, d_r/2) or (B, N, d_r/2) (per-sample positions, e.g.
            the visible tokens of MAE); a plain 2-tuple means interleaved pairing.
        inner_dims: Number of axes between the token axis and the channels.

    Returns:
        Tensor of the same shape and dtype as ``x``; channels past ``d_r`` are unchanged. The
        rotation itself is computed in float32 (the tables are float32; a half-precision ``x``
        is upcast for it and the result cast back), in plain element-wise ops that
        ``torch.compile`` fuses into one kernel.
    """
    if not isinstance(rope, RopeTable):
        rope = RopeTable(*rope)
    half = rope.cos.shape[-1]
    d_r = 2 * half
    view = (*rope.cos.shape[:-1], *([1] * inner_dims), half)
    cos, sin = rope.cos.view(view), rope.sin.view(view)
    rot = x[..., :d_r].to(torch.promote_types(x.dtype, torch.float32))
    if rope.interleaved:
        a, b = rot.unflatten(-1, (half, 2)).unbind(-1)
        out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)
    else:
        a, b = rot[..., :half], rot[..., half:]
        out = torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
    out = out.to(x.dtype)
    if d_r == x.shape[-1]:
        return out
    return torch.cat([out, x[..., d_r:]], dim=-1)


class RotaryEmbedding(nn.Module):
    """RoPE tables for 1-D sequences (``ndim=1``) or 2-D raster grids (``ndim=2``).

    Args:
        head_dim: Channels per attention head.
        ratio: Fraction of ``head_dim`` that is rotated, in (0, 1]; ``d_r = ratio * head_dim``
            must be a positive multiple of 4 (2-D) or 2 (1-D).
        theta: Base of the frequencies.
        ndim: 1 (sequences) or 2 (grids).
        pairing: ``'interleaved'`` (channels 2p, 2p+1) or ``'half'`` (p, p + d_r/2).
        anchor: 2-D only: token grid ``(H, W)`` (or one int) of the training resolution; if given,
            positions are scaled towards it (AS2DRoPE). ``None``: no scaling.
        scale_axes: ``'xy'``: ``s_x = anchor_w / W``, ``s_y = anchor_h / H``; ``'y'``: both axes
            by ``anchor_h / H`` (the released pyramid seg/det code).
        cache_size: Tables kept (least recently used dropped first).

    ``forward(h, w, prefix=())`` (2-D) is :meth:`grid`; ``forward(n, offset=0)`` (1-D) is
    :meth:`sequence`.
    """

    def __init__(self,
                 head_dim: int,
                 ratio: float = 1.0,
                 theta: float = 10000.,
                 ndim: int = 2,
                 pairing: str = 'interleaved',
                 anchor: Optional[Union[int, Sequence[int]]] = None,
                 scale_axes: str = 'xy',
                 cache_size: int = 32):
        super().__init__()
        if ndim not in (1, 2):
            raise ValueError(f'RotaryEmbedding: ndim must be 1 or 2, got {ndim!r}.')
        if pairing not in ('interleaved', 'half'):
            raise ValueError(f'RotaryEmbedding: pairing must be "interleaved" or "half", '
                             f'got {pairing!r}.')
        if scale_axes not in ('xy', 'y'):
            raise ValueError(f'RotaryEmbedding: scale_axes must be "xy" or "y", got {scale_axes!r}.')
        if not isinstance(ratio, (int, float)) or not 0. < ratio <= 1.:
            raise ValueError(f'RotaryEmbedding: ratio (rope_ratio) must be in (0, 1], got {ratio!r}.')
        if anchor is not None and ndim == 1:
            raise ValueError('RotaryEmbedding: anchor (AS2DRoPE) applies to 2-D grids only.')
        if not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f'RotaryEmbedding: cache_size must be a positive int, got {cache_size!r}.')
        d_r = int(head_dim * ratio)
        step = 2 * ndim
        if d_r <= 0 or d_r % step != 0:
            raise ValueError(
                f'RotaryEmbedding: the rotated dim head_dim*ratio = {head_dim}*{ratio} = {d_r} '
                f'must be a positive multiple of {step} ({"two axes x " if ndim == 2 else ""}'
                'complex pairs).')
        self.head_dim = head_dim
        self.rot_dim = d_r
        self.theta = float(theta)
        self.ndim = ndim
        self.pairing = pairing
        if isinstance(anchor, int):
            anchor = (anchor, anchor)
        self.anchor = tuple(anchor) if anchor is not None else None
        self.scale_axes = scale_axes
        self.cache_size = cache_size
        freqs = theta**(-torch.arange(0, d_r, step, dtype=torch.float32) / d_r)
        self.register_buffer('freqs', freqs, persistent=False)  # (d_r / (2 ndim),)
        self._cache: 'OrderedDict[tuple, RopeTable]' = OrderedDict()

    def extra_repr(self) -> str:
        return (f'head_dim={self.head_dim}, rot_dim={self.rot_dim}, theta={self.theta}, '
                f'ndim={self.ndim}, pairing={self.pairing}, anchor={self.anchor}, '
                f'cache_size={self.cache_size}')

    # ------------------------------------------------------------------------------ positions
    def scale(self, height: int, width: int) -> Tuple[float, float]:
        """Position scale ``(s_x, s_y)`` of an ``height x width`` grid (1 without an anchor)."""
        if self.anchor is None:
            return 1.0, 1.0
        if self.scale_axes == 'y':
            return self.anchor[0] / height, self.anchor[0] / height
        return self.anchor[1] / width, self.anchor[0] / height

    def angles(self, positions: torch.Tensor) -> torch.Tensor:
        """Rotation angles for positions (..., ndim) -> (..., d_r / 2), in pairing order."""
        freqs = self.freqs.to(positions.device)
        if self.ndim == 1:
            ang = positions.float() * freqs  # (..., 1) * (d_r/2,)
        else:
            ax = positions[..., 0:1].float() * freqs
            ay = positions[..., 1:2].float() * freqs
            ang = torch.stack([ax, ay], dim=-1).flatten(-2)  # [x w0, y w0, x w1, y w1, ...]
        return ang

    def table(self, positions: torch.Tensor) -> RopeTable:
        """Uncached table for arbitrary (already scaled) positions of shape (..., ndim)."""
        with torch.autocast(device_type=positions.device.type, enabled=False):
            ang = self.angles(positions)
            cls = RopeTable if self.pairing == 'interleaved' else HalfRopeTable
            return cls(ang.cos(), ang.sin())

    # ---------------------------------------------------------------------------------- cache
    def cached(self, key: Hashable, make: Callable[[torch.device], RopeTable],
               device=None) -> RopeTable:
        """The table ``make(device)`` under ``key``, built once and kept in the LRU cache.

        The device and the inference-mode flag are added to the key, so a table made under
        ``torch.inference_mode()`` is never handed to a later training forward.
        """
        device = torch.device(device) if device is not None else self.freqs.device
        if torch.compiler.is_compiling():
            # inside a compiled graph the table is a few fused element-wise ops on constants;
            # a Python-side cache there would only add guards (and a recompile per new entry)
            return make(device)
        full_key = (key, device, torch.is_inference_mode_enabled())
        table = self._cache.get(full_key)
        if table is not None:
            self._cache.move_to_end(full_key)
            return table
        table = make(device)
        self._cache[full_key] = table
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return table

    def cached_keys(self) -> list:
        """Keys of the cached tables, least recently used first: ``(key, device, inference)``."""
        return list(self._cache)

    def _apply(self, fn, *args, **kwargs):
        # moving the module (``.to``/``.cuda``/``.half``) invalidates the cached tables
        self._cache = OrderedDict()
        return super()._apply(fn, *args, **kwargs)

    # --------------------------------------------------------------------------------- tables
    def grid(self, height: int, width: int,
             prefix: Sequence[Optional[Tuple[float, float]]] = (), scaled: bool = True,
             device=None) -> RopeTable:
        """Table of an ``height x width`` grid in raster order, after ``len(prefix)`` extra rows.

        Args:
            height, width: Token grid.
            prefix: One entry per token placed before the grid (e.g. the class token): its
                unscaled ``(x, y)`` position (scaled like the grid), or ``None`` for the identity
                rotation (cos 1, sin 0).
            scaled: Apply the AS2DRoPE scale; ``False`` for grids that are never scaled
                (LSA / ViTDet windows, as in the official code).
            device: Device of the table (default: the module's).

        Returns:
            :class:`RopeTable` of (len(prefix) + height * width, d_r/2), float32, cached.
        """
        if self.ndim != 2:
            raise ValueError('RotaryEmbedding.grid needs ndim=2; use sequence() for ndim=1.')
        prefix = tuple(None if p is None else (float(p[0]), float(p[1])) for p in prefix)

        def make(dev):
            # the identity rotation is the angle 0, i.e. position (0, 0) at any scale
            fixed = [(0., 0.) if p is None else p for p in prefix]
            pos = torch.cat([torch.tensor(fixed, dtype=torch.float32, device=dev).view(-1, 2),
                             grid_positions(height, width, device=dev)])
            scale = self.scale(height, width) if scaled else (1., 1.)
            return self.table(pos * pos.new_tensor(scale))

        return self.cached(('grid', height, width, prefix, scaled), make, device)

    def sequence(self, length: int, offset: Union[int, torch.Tensor] = 0,
                 device=None) -> RopeTable:
        """Table of 1-D positions ``offset .. offset + length - 1`` -> (length, d_r/2).

        With an int ``offset``, one table per power-of-two capacity is cached and sliced, so
        KV-cache decoding (one new position per step) does not fill the cache. A 0-dim integer
        tensor ``offset`` (a :class:`KVCache`'s ``position``) gives the same rows computed for
        those positions alone, with no Python int taken from the tensor: a compiled decoding step
        is then one graph for every position instead of one per offset.
        """
        if self.ndim != 1:
            raise ValueError('RotaryEmbedding.sequence needs ndim=1; use grid() for ndim=2.')
        if length < 0:
            raise ValueError(f'RotaryEmbedding.sequence: length {length} must be >= 0.')
        if isinstance(offset, torch.Tensor):
            if offset.dim() != 0 or offset.is_floating_point():
                raise ValueError(f'RotaryEmbedding.sequence: a tensor offset must be a 0-dim '
                                 f'integer tensor, got {offset.dtype} of shape '
                                 f'{tuple(offset.shape)}.')
            pos = offset + torch.arange(length, device=offset.device)
            return self.table(pos[:, None].to(device if device is not None else offset.device))
        if offset < 0:
            raise ValueError(f'RotaryEmbedding.sequence: offset {offset} must be >= 0.')
        end = offset + length
        capacity = 1 << max(end - 1, 1).bit_length()

        def make(dev):
            return self.table(torch.arange(capacity, dtype=torch.float32, device=dev)[:, None])

        t = self.cached(('sequence', capacity), make, device)
        return type(t)(t.cos[offset:end], t.sin[offset:end])

    def forward(self, *size: int, **kwargs) -> RopeTable:
        """``forward(h, w, prefix=(), device=None)`` for grids, ``forward(n, offset=0,
        device=None)`` for sequences."""
        if len(size) != self.ndim:
            raise ValueError(f'RotaryEmbedding(ndim={self.ndim}) takes {self.ndim} size '
                             f'argument(s), got {size}.')
        return self.grid(*size, **kwargs) if self.ndim == 2 else self.sequence(*size, **kwargs)
