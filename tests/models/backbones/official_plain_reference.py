"""A reference of the official supervised plain VisionLLaMA (deit code base), for parity tests.

Written from the official layout (``deit/my_models.py``, ``vit_llama_rope_*``): timm-0.3.2
key names (``patch_embed.proj``, ``blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.c_fc1,mlp.c_fc2,
mlp.c_proj,gamma_1,gamma_2}``, ``norm``, ``head``), RoPE computed with complex numbers over
positions ``arange(-1, N)`` split with floor division (so the class token sits at x = W-1, y = -1),
explicit softmax attention. It deliberately shares no code with the package.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def _freqs_cis(dim, num_patches, use_cls, scale=1.0, theta=10000.0):
    side = int(num_patches**0.5)
    flat = torch.arange(-1 if use_cls else 0, num_patches)
    x = (flat % side) * scale  # Python modulo: the class token (-1) gets x = side - 1
    y = torch.div(flat, side, rounding_mode='floor') * scale
    freqs = 1.0 / theta**(torch.arange(0, dim, 4)[:dim // 4].float() / dim)
    xc = torch.polar(torch.ones(len(flat), dim // 4), torch.outer(x.float(), freqs))
    yc = torch.polar(torch.ones(len(flat), dim // 4), torch.outer(y.float(), freqs))
    return torch.stack([xc, yc], dim=-1).reshape(len(flat), -1)  # (N, dim/2) complex


def _rotate(t, cis):  # t: B N H C
    tc = torch.view_as_complex(t.float().reshape(*t.shape[:-1], -1, 2))
    return torch.view_as_real(tc * cis[None, :, None, :]).flatten(3).type_as(t)


class _Mlp(nn.Module):

    def __init__(self, dim):
        super().__init__()
        hidden = int(2 * 4 * dim / 3)
        hidden = hidden if hidden % 256 == 0 else hidden + 256 - hidden % 256
        self.c_fc1 = nn.Linear(dim, hidden, bias=False)
        self.c_fc2 = nn.Linear(dim, hidden, bias=False)
        self.c_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.c_proj(F.silu(self.c_fc1(x)) * self.c_fc2(x))


class _Attn(nn.Module):

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, cis):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 1, 3, 4)
        q, k = _rotate(q, cis), _rotate(k, cis)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        attn = (q @ k.transpose(-2, -1)) * (C // self.heads)**-0.5
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C))


class _Block(nn.Module):

    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attn(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim)
        self.gamma_1 = nn.Parameter(1e-4 * torch.ones(dim))
        self.gamma_2 = nn.Parameter(1e-4 * torch.ones(dim))

    def forward(self, x, cis):
        x = x + self.gamma_1 * self.attn(self.norm1(x), cis)
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class OfficialPlainVisionLLaMA(nn.Module):
    """``vit_llama_rope_{small,base,large}_patch16`` as laid out by the official deit code."""

    def __init__(self, dim=384, depth=12, heads=6, num_classes=1000, use_cls_token=True,
                 img_size=224, patch=16):
        super().__init__()
        self.heads, self.use_cls_token = heads, use_cls_token
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch, patch)
        self.num_patches = (img_size // patch)**2
        if use_cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList([_Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def randomize(self, seed=0):
        """Random weights everywhere (LayerScale and norms too), so parity checks every key."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith(('gamma_1', 'gamma_2')):
                    p.copy_(0.5 + torch.rand(p.shape, generator=g))
                elif 'norm' in name and name.endswith('weight'):
                    p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.05 * torch.randn(p.shape, generator=g))
        return self

    def forward(self, x):
        B = x.shape[0]
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        cis = _freqs_cis(x.shape[-1] // self.heads, self.num_patches, self.use_cls_token)
        if self.use_cls_token:
            x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)
        for blk in self.blocks:
            x = blk(x, cis)
        x = self.norm(x)[:, 0] if self.use_cls_token else self.norm(x.mean(dim=1))
        return self.head(x)
