"""Multi-head self-attention with optional rotary position embedding on queries and keys."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rope import RopeTable, apply_rope

__all__ = ['RoPEAttention']


class RoPEAttention(nn.Module):
    """Self-attention whose q and k (never v) are rotated by a RoPE table.

    Args:
        embed_dims: Channels C of the tokens.
        num_heads: Heads; ``head_dim = C / num_heads``.
        qkv_bias: Bias of the fused qkv projection.
        proj_bias: Bias of the output projection.
        attn_drop: Dropout on the attention weights (training only).
        proj_drop: Dropout after the output projection.

    Shapes:
        x: (B, N, C) -> (B, N, C); ``rope`` is ``(cos, sin)`` of shape (N, d_r/2) or
        (B, N, d_r/2), or ``None`` for no rotation.
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True,
                 proj_bias: bool = True, attn_drop: float = 0., proj_drop: float = 0.):
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'RoPEAttention: embed_dims {embed_dims} is not divisible by '
                             f'num_heads {num_heads}.')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dim = embed_dims // num_heads
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(embed_dims, embed_dims, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, rope: Optional[RopeTable] = None) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))
