"""Multi-head attention with RoPE on queries and keys, always through SDPA.

One module serves self-attention with a fused ``qkv`` projection (plain and pyramid LSA blocks,
ViTDet windows, DiT), global sub-sampled attention (pyramid GSA: queries from every token, keys and
values from a strided-conv summary, ``sr_ratio``), causal attention (``is_causal``) and KV-cache
decoding (:class:`KVCache`). ``layout='llama'`` names the projections as transformers' LLaMA does
(``q_proj``/``k_proj``/``v_proj``/``o_proj``), so HF-format LLaMA checkpoints load as they are.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rope import RopeTable, apply_rope

__all__ = ['Attention', 'KVCache']


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer.

    ``update(k, v)`` stores the (B, heads, N, head_dim) keys/values of the next N positions and
    returns the keys/values to attend over with the positions of the N new queries (``None`` at
    the first update, where plain causal attention over the new keys is right). The count of
    stored positions is the 0-dim long tensor ``position``, never a Python int inside the
    forward, so a compiled decoding step is one graph for every position; ``length`` reads it as
    an int (a host read, for callers outside the forward).

    With a ``capacity`` (the final length, as in sampling) the buffers (B, heads, capacity,
    head_dim) are zero-filled at the first update and written in place at ``position``
    (``index_copy_``), and every step attends over the whole buffer, the not yet written slots
    masked: the shapes are the same at every step. Writing past the capacity is an error (the
    index is out of range). Without a capacity the keys are concatenated, so the key length grows
    by one per step (under ``torch.compile`` the length is then made dynamic after one
    recompilation).
    """

    def __init__(self, capacity: Optional[int] = None):
        if capacity is not None and (not isinstance(capacity, int) or capacity < 1):
            raise ValueError(f'KVCache: capacity must be None or a positive int, got {capacity!r}.')
        self.capacity = capacity
        self.k: Optional[torch.Tensor] = None
        self.v: Optional[torch.Tensor] = None
        self.position: Optional[torch.Tensor] = None

    @property
    def length(self) -> int:
        """Number of stored positions (reads ``position`` back to the host)."""
        return 0 if self.position is None else int(self.position)

    def offset(self) -> Union[int, torch.Tensor]:
        """Position of the next token: 0 before the first update, else the tensor ``position``
        (the RoPE offset, see :meth:`RotaryEmbedding.sequence`)."""
        return 0 if self.position is None else self.position

    def update(self, k: torch.Tensor, v: torch.Tensor
               ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Store keys/values (B, heads, N, head_dim) -> (keys, values, query positions (N,) or
        ``None`` at the first update)."""
        n = k.shape[-2]
        if self.position is None:  # the prompt: nothing stored before it
            if self.capacity is not None:
                if n > self.capacity:
                    raise ValueError(f'KVCache: {n} positions exceed the capacity '
                                     f'{self.capacity}.')
                shape = (*k.shape[:-2], self.capacity, k.shape[-1])
                self.k, self.v = k.new_zeros(shape), v.new_zeros(shape)
                self.k[..., :n, :] = k
                self.v[..., :n, :] = v
            else:
                self.k, self.v = k, v
            self.position = torch.full((), n, dtype=torch.long, device=k.device)
            return k, v, None
        query_pos = self.position + torch.arange(n, device=k.device)
        if self.capacity is not None:
            self.k.index_copy_(-2, query_pos, k.to(self.k.dtype))
            self.v.index_copy_(-2, query_pos, v.to(self.v.dtype))
        else:
            self.k = torch.cat([self.k, k.to(self.k.dtype)], dim=-2)
            self.v = torch.cat([self.v, v.to(self.v.dtype)], dim=-2)
        self.position = self.position + n
        return self.k, self.v, query_pos


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
            k, v, query_pos = cache.update(k, v)
            if query_pos is not None:
                # the new queries continue the stored positions: query i (at query_pos[i]) sees
                # the stored keys up to its own position (causal) or all stored keys
                if attn_mask is not None:
                    raise ValueError('Attention: attn_mask cannot be combined with a KVCache '
                                     'that already holds keys.')
                key_pos = torch.arange(k.shape[-2], device=x.device)
                attn_mask = key_pos <= (query_pos[:, None] if is_causal else query_pos[-1:, None])
                is_causal = False
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal,
            dropout_p=self.attn_drop if self.training else 0.)
        x = x.transpose(1, 2).reshape(B, N, C)
        proj = getattr(self, self._out_name)
        return self.proj_drop(proj(x))
