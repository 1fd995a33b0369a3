"""Gated feed-forward networks: SwiGLU (LLaMA, VisionLLaMA) and GeGLU (ViTamin)."""
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
    """``w3(act(x W_gate) * (x W_up))`` with the gate and up projections fused in ``w12``.

    Args:
        embed_dims: Input and output channels C.
        hidden_dims: Hidden channels h; ``w12`` maps C -> 2h (gate first, then up).
        bias: Bias on both Linears (False in the supervised VisionLLaMA).
        act: ``'silu'`` (SwiGLU) or ``'gelu'`` (GeGLU).
        drop: Dropout on the hidden activations and on the output.

    Shapes:
        (..., C) -> (..., C)
    """

    _ACTS = {'silu': F.silu, 'gelu': F.gelu}

    def __init__(self, embed_dims: int, hidden_dims: int, bias: bool = False,
                 act: str = 'silu', drop: float = 0.):
        super().__init__()
        if act not in self._ACTS:
            raise ValueError(f'GatedFFN: act must be one of {sorted(self._ACTS)}, got {act!r}.')
        self.embed_dims = embed_dims
        self.hidden_dims = hidden_dims
        self.act = act
        self.w12 = nn.Linear(embed_dims, 2 * hidden_dims, bias=bias)
        self.w3 = nn.Linear(hidden_dims, embed_dims, bias=bias)
        self.drop = nn.Dropout(drop)

    def extra_repr(self) -> str:
        return f'act={self.act}'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w12(x).chunk(2, dim=-1)
        return self.drop(self.w3(self.drop(self._ACTS[self.act](gate) * up)))


class SwiGLUFFN(GatedFFN):
    """SwiGLU: :class:`GatedFFN` with SiLU."""

    def __init__(self, embed_dims: int, hidden_dims: int, bias: bool = False, drop: float = 0.):
        super().__init__(embed_dims, hidden_dims, bias=bias, act='silu', drop=drop)


class GeGLUFFN(GatedFFN):
    """GeGLU: :class:`GatedFFN` with GELU."""

    def __init__(self, embed_dims: int, hidden_dims: int, bias: bool = True, drop: float = 0.):
        super().__init__(embed_dims, hidden_dims, bias=bias, act='gelu', drop=drop)
