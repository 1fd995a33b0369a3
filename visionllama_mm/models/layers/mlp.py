"""Gated feed-forward networks: SwiGLU (LLaMA, VisionLLaMA) and GeGLU (ViTamin)."""
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['GatedFFN', 'SwiGLUFFN', 'GeGLUFFN', 'llama_hidden_dims']


def llama_hidden_dims(embed_dims: int, ratio: float = 4., multiple_of: int = 256) -> int:
    """LLaMA's SwiGLU width: ``round_up(int(2/3 * ratio * C), multiple_of)``.

    VisionLLaMA S/B/L (C = 384/768/1024) -> 1024/2048/2816.
    """
    hidden = int(2 * ratio * embed_dims / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class GatedFFN(nn.Module):
    """``w3(act(x W_gate) * (x W_up))`` with the gate and up projections fused in ``w12``
    (``layout='fused'``), or as transformers' LLaMA MLP names them: ``down_proj(act(gate_proj(x)) *
    up_proj(x))`` (``layout='llama'``, so HF-format checkpoints load as they are).

    Args:
        embed_dims: Input and output channels C.
        hidden_dims: Hidden channels h; ``w12`` maps C -> 2h (gate first, then up).
        bias: Bias on both Linears (False in the supervised VisionLLaMA).
        act: ``'silu'`` (SwiGLU) or ``'gelu'`` (GeGLU).
        drop: Dropout on the hidden activations and on the output.
        norm_layer: ``norm_layer(embed_dims)``, applied to the input first (ViTamin's GeGLU
            MLP normalises its input although the block already did: ``norm``); none by default.
        layout: ``'fused'`` (``w12``, ``w3``) or ``'llama'`` (``gate_proj``, ``up_proj``,
            ``down_proj``).

    Shapes:
        (..., C) -> (..., C)
    """

    _ACTS = {'silu': F.silu, 'gelu': F.gelu}

    def __init__(self, embed_dims: int, hidden_dims: int, bias: bool = False,
                 act: str = 'silu', drop: float = 0.,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None, layout: str = 'fused'):
        super().__init__()
        if act not in self._ACTS:
            raise ValueError(f'GatedFFN: act must be one of {sorted(self._ACTS)}, got {act!r}.')
        if layout not in ('fused', 'llama'):
            raise ValueError(f'GatedFFN: layout must be "fused" or "llama", got {layout!r}.')
        self.embed_dims = embed_dims
        self.hidden_dims = hidden_dims
        self.act = act
        self.layout = layout
        self.norm = norm_layer(embed_dims) if norm_layer is not None else nn.Identity()
        if layout == 'llama':
            self.gate_proj = nn.Linear(embed_dims, hidden_dims, bias=bias)
            self.up_proj = nn.Linear(embed_dims, hidden_dims, bias=bias)
            self.down_proj = nn.Linear(hidden_dims, embed_dims, bias=bias)
        else:
            self.w12 = nn.Linear(embed_dims, 2 * hidden_dims, bias=bias)
            self.w3 = nn.Linear(hidden_dims, embed_dims, bias=bias)
        self.drop = nn.Dropout(drop)

    def extra_repr(self) -> str:
        return f'act={self.act}, layout={self.layout}'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == 'llama':
            x = self.norm(x)
            h = self._ACTS[self.act](self.gate_proj(x)) * self.up_proj(x)
            return self.drop(self.down_proj(self.drop(h)))
        gate, up = self.w12(self.norm(x)).chunk(2, dim=-1)
        return self.drop(self.w3(self.drop(self._ACTS[self.act](gate) * up)))


class SwiGLUFFN(GatedFFN):
    """SwiGLU: :class:`GatedFFN` with SiLU."""

    def __init__(self, embed_dims: int, hidden_dims: int, bias: bool = False, drop: float = 0.,
                 layout: str = 'fused'):
        super().__init__(embed_dims, hidden_dims, bias=bias, act='silu', drop=drop, layout=layout)


class GeGLUFFN(GatedFFN):
    """GeGLU: :class:`GatedFFN` with GELU."""

    def __init__(self, embed_dims: int, hidden_dims: int, bias: bool = True, drop: float = 0.,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None):
        super().__init__(embed_dims, hidden_dims, bias=bias, act='gelu', drop=drop,
                         norm_layer=norm_layer)
