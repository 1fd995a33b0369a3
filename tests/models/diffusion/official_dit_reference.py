"""An independent DiT-LLaMA in the official layout (VisionLLaMA's ``dit/models.py``), for
converter parity: timm attention and MLP names, complex 2-D RoPE rebuilt from the token count,
``LLaMAMLP`` with ``c_fc1``/``c_fc2``/``c_proj``, the frozen (unused) ``pos_embed``. Its RoPE
and MLP are the plain reference's (the official DiT code copies them); nothing comes from the
package."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# the same official RoPE and SwiGLU as the supervised model (dit/models.py copies them)
from ..backbones.official_plain_reference import _freqs_cis, _Mlp, _rotate


class Attn(nn.Module):
    """The official ``RAttention``: the complex table is rebuilt when the token count changes
    (kept otherwise), q/k rotated by complex multiplication, then ``F.scaled_dot_product_attention``."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.cis = None

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).unbind(2)
        if self.cis is None or self.cis.shape[0] != N or self.cis.device != x.device:
            self.cis = _freqs_cis(C // self.heads, N, use_cls=False).to(x.device)
        q, k = _rotate(q, self.cis), _rotate(k, self.cis)
        x = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attn(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = _Mlp(dim)  # the official LLaMAMLP (c_fc1 / c_fc2 / c_proj)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x, c):
        s1, b1, g1, s2, b2, g2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), s1, b1))
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), s2, b2))


class OfficialDiTLLaMA(nn.Module):
    def __init__(self, input_size=8, patch=2, in_ch=4, dim=32, depth=2, heads=2, classes=10):
        super().__init__()
        self.patch, self.out_ch = patch, 2 * in_ch
        self.x_embedder = nn.Module()
        self.x_embedder.proj = nn.Conv2d(in_ch, dim, patch, patch)
        self.t_embedder = nn.Module()
        self.t_embedder.mlp = nn.Sequential(nn.Linear(256, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.y_embedder = nn.Module()
        self.y_embedder.embedding_table = nn.Embedding(classes + 1, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, (input_size // patch)**2, dim),
                                      requires_grad=False)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.final_layer = nn.Module()
        self.final_layer.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.final_layer.linear = nn.Linear(dim, patch * patch * self.out_ch)
        self.final_layer.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x, t, y):
        x = self.x_embedder.proj(x).flatten(2).transpose(1, 2)
        half = 128
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        c = self.t_embedder.mlp(torch.cat([torch.cos(args), torch.sin(args)], -1))
        c = c + self.y_embedder.embedding_table(y)
        for blk in self.blocks:
            x = blk(x, c)
        shift, scale = self.final_layer.adaLN_modulation(c).chunk(2, dim=1)
        x = self.final_layer.linear(modulate(self.final_layer.norm_final(x), shift, scale))
        p, c_out, h = self.patch, self.out_ch, int(x.shape[1]**0.5)
        x = x.reshape(x.shape[0], h, h, p, p, c_out)
        return torch.einsum('nhwpqc->nchpwq', x).reshape(x.shape[0], c_out, h * p, h * p)
