"""Multi-head attention with RoPE on queries and keys, always through SDPA.

One module serves self-attention with a fused ``qkv`` projection (plain and pyramid LSA blocks,
ViTDet windows, DiT), global sub-sampled attention (pyramid GSA: queries from every token, keys and
values from a strided-conv summary, ``sr_ratio``), causal attention (``is_causal``) and KV-cache
decoding (:class:`KVCache`). ``layout='llama'`` names the projections as transformers' LLaMA does
(``q_proj``/``k_proj``/``v_proj``/``o_proj``), so HF-format LLaMA checkpoints load as they are.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rope import RopeTable, apply_rope

__all__ = ['Attention', 'KVCache']

class KVCache:
    """Keys and values of the positions seen so far, for one attention layer.

    ``update(k, v)`` appends (B, heads, L_new, head_dim) keys/values and returns all of them;
    ``length`` is the number of positions stored (the RoPE offset of the next token). With a
    ``capacity`` (the final length, when known, as in sampling) one buffer is allocated at the
    first update and written in place, so step t copies only its own keys instead of the t
    stored ones (``torch.cat``, what transformers' dynamic cache does); without one, or past it,
    the stored keys are concatenated.
    """

    def __init__(self, capacity: Optional[int] = None):
        self.capacity = capacity
        self.k: Optional[torch.Tensor] = None
        self.v: Optional[torch.Tensor] = None
        self._len = 0

    @property
    def length(self) -> int:
        return self._len

    def update(self, k: torch.Tensor, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        end = self._len + k.shape[-2]
        if self.k is None and self.capacity is not None and self.capacity >= end:
            shape = (*k.shape[:-2], self.capacity, k.shape[-1])
            self.k, self.v = k.new_empty(shape), v.new_empty(shape)
        if self.k is not None and self.k.shape[-2] >= end and self.k.dtype == k.dtype:
            self.k[..., self._len:end, :] = k
            self.v[..., self._len:end, :] = v
        elif self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k[..., :self._len, :], k], dim=-2)
            self.v = torch.cat([self.v[..., :self._len, :], v], dim=-2)
        self._len = end
        return self.k[..., :end, :], self.v[..., :end, :]


class Attention(nn.Module):
    """Multi-head attention whose q and k (never v) are rotated by RoPE tables.

    Args:
        embed_dims: Channels C of the tokens.
        num_heads: Heads; ``head_dim = C / num_heads``.
        qkv_bias: Bias of the q/k/v projections.
        proj_bias: Bias of the output projection.
        attn_drop: Dropout on the attention weights (training only).
        proj_drop: Dropout after the output projection.
        sr_ratio: ``None``: self-attention with one fused ``qkv`` Linear. An int >= 1: GSA layout,
            ``q`` Linear on the tokens, ``kv`` Linear on keys/values that come from
            ``norm(sr(x))`` (a Conv2d of kernel = stride = ``sr_ratio``, then LayerNorm) when
            ``sr_ratio > 1``, else from the tokens themselves.
        norm_eps: Epsilon of the LayerNorm after the sub-sampling conv.
        layout: ``'fused'`` (``qkv`` + ``proj``, or GSA's ``q`` + ``kv`` + ``proj``) or ``'llama'``:
            separate ``q_proj``/``k_proj``/``v_proj`` and an ``o_proj`` output, the parameter names
            of transformers' ``LlamaAttention`` (no sub-sampling).

    Shapes:
        ``forward(x, rope, hw=None, key_rope=None, attn_mask=None, is_causal=False, cache=None)``:
        x (B, N, C) -> (B, N, C). ``rope`` rotates the queries (and the keys of self-attention):
        (N, d_r/2) or per-sample (B, N, d_r/2); ``key_rope`` the (B|1, M, d_r/2) keys when they
        differ from the queries (GSA); ``hw`` the token grid (needed for ``sr_ratio > 1``);
        ``attn_mask`` any mask SDPA takes (bool: True = attend); ``cache`` a :class:`KVCache`
        the new keys/values are appended to (causal masking then aligns queries to the end).
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True,
                 proj_bias: bool = True, attn_drop: float = 0., proj_drop: float = 0.,
                 sr_ratio: Optional[int] = None, norm_eps: float = 1e-5,
                 layout: str = 'fused'):
        super().__init__()
        if layout not in ('fused', 'llama'):
            raise ValueError(f'Attention: layout must be "fused" or "llama", got {layout!r}.')
        if layout == 'llama' and sr_ratio is not None:
            raise ValueError('Attention: layout="llama" has no sub-sampled (sr_ratio) keys.')
        if not isinstance(num_heads, int) or isinstance(num_heads, bool) or num_heads < 1:
            raise ValueError(f'Attention: num_heads must be a positive int, got {num_heads!r}.')
        if embed_dims % num_heads != 0:
            raise ValueError(f'Attention: embed_dims {embed_dims} is not divisible by '
                             f'num_heads {num_heads}.')
        if sr_ratio is not None and (not isinstance(sr_ratio, int) or sr_ratio < 1):
            raise ValueError(f'Attention: sr_ratio must be None or an int >= 1, got {sr_ratio!r}.')
        for name, p in (('attn_drop', attn_drop), ('proj_drop', proj_drop)):
            if not 0. <= p < 1.:
                raise ValueError(f'Attention: {name} must be in [0, 1), got {p!r}.')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dim = embed_dims // num_heads
        self.sr_ratio = sr_ratio
        self.layout = layout
        if layout == 'llama':
            self.q_proj = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
            self.k_proj = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
            self.v_proj = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        elif sr_ratio is None:
            self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        else:
            self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
            self.kv = nn.Linear(embed_dims, embed_dims * 2, bias=qkv_bias)
            if sr_ratio > 1:
                self.sr = nn.Conv2d(embed_dims, embed_dims, sr_ratio, stride=sr_ratio)
                self.norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn_drop = attn_drop
        self._out_name = 'o_proj' if layout == 'llama' else 'proj'
        self.add_module(self._out_name, nn.Linear(embed_dims, embed_dims, bias=proj_bias))
        self.proj_drop = nn.Dropout(proj_drop)

    def extra_repr(self) -> str:
        return f'num_heads={self.num_heads}, sr_ratio={self.sr_ratio}, layout={self.layout}'

    def _project(self, x: torch.Tensor, rope: Optional[RopeTable], hw, key_rope):
        """-> q, k, v of shape (B, heads, N|M, head_dim), RoPE applied."""
        B, N, C = x.shape
        h, d = self.num_heads, self.head_dim
        if self.layout == 'llama':
            q, k, v = (p(x).view(B, N, h, d) for p in (self.q_proj, self.k_proj, self.v_proj))
            if rope is not None:
                q = apply_rope(q, rope, inner_dims=1)
                k = apply_rope(k, rope, inner_dims=1)
        elif self.sr_ratio is None:
            qkv = self.qkv(x).view(B, N, 3, h, d)
            # split, not slicing: its backward is one cat instead of zero-filled full buffers
            qk, v = qkv.split((2, 1), dim=2)
            if rope is not None:  # q and k rotated in one call
                qk = apply_rope(qk, rope, inner_dims=2)
            q, k = qk.unbind(2)
            v = v.squeeze(2)
        else:
            q = self.q(x).view(B, N, h, d)
            if self.sr_ratio > 1:
                if hw is None:
                    raise ValueError('Attention: sr_ratio > 1 needs the token grid hw.')
                H, W = hw
                x = self.sr(x.transpose(1, 2).reshape(B, C, H, W)).flatten(2).transpose(1, 2)
                x = self.norm(x)
            k, v = self.kv(x).view(B, x.shape[1], 2, h, d).unbind(2)
            if rope is not None:
                q = apply_rope(q, rope, inner_dims=1)
                k = apply_rope(k, key_rope if key_rope is not None else rope, inner_dims=1)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def forward(self, x: torch.Tensor, rope: Optional[RopeTable] = None,
                hw: Optional[Tuple[int, int]] = None, key_rope: Optional[RopeTable] = None,
                attn_mask: Optional[torch.Tensor] = None, is_causal: bool = False,
                cache: Optional[KVCache] = None) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self._project(x, rope, hw, key_rope)
        if (attn_mask is not None and attn_mask.dtype != torch.bool
                and attn_mask.dtype != q.dtype):
            attn_mask = attn_mask.to(q.dtype)  # an additive mask takes the attention's dtype
        if cache is not None:
            past = cache.length
            k, v = cache.update(k, v)
            if is_causal and past and N > 1:
                # SDPA's is_causal aligns to the top-left; with a cache the queries are the last N
                attn_mask = torch.ones(N, past + N, dtype=torch.bool, device=x.device).tril(past)
                is_causal = False
            elif is_causal and past:
                is_causal = False  # one new query attends to every stored position
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal,
            dropout_p=self.attn_drop if self.training else 0.)
        x = x.transpose(1, 2).reshape(B, N, C)
        proj = getattr(self, self._out_name)
        return self.proj_drop(proj(x))
