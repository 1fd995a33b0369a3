"""A reference of the official pyramid VisionLLaMA (``pllama_wols_*``, deit code), for parity tests.

Written from the official layout (``deit/my_models.py``, ``pllama_wols_*``): key names
``patch_embeds.k.{proj,norm}``, ``blocks.k.i.{norm1,attn.*,norm2,mlp.c_fc1,mlp.c_fc2,mlp.c_proj,
gamma_1,gamma_2}``, ``norm``, ``head``; LSA on even blocks (zero-padded 7x7 windows, window-local
RoPE), GSA on odd blocks with the released code's key positions (raster split with the
full-resolution W, step sr, offset 1 - 1/sr), optional ``s = 14 / H`` auto-scale; RoPE with complex
numbers; explicit softmax attention; the head normalises twice. Shares no code with the package.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .official_plain_reference import _Mlp


def _cis(dim, xs, ys, theta=10000.0):
    freqs = 1.0 / theta**(torch.arange(0, dim, 4)[:dim // 4].float() / dim)
    xc = torch.polar(torch.ones(len(xs), dim // 4), torch.outer(xs.float(), freqs))
    yc = torch.polar(torch.ones(len(xs), dim // 4), torch.outer(ys.float(), freqs))
    return torch.stack([xc, yc], dim=-1).reshape(len(xs), -1)


def _general(dim, n, W, step=1, bias=0.0, scale=1.0):
    flat = torch.arange(n)
    return _cis(dim, scale * (bias + (flat % W) * step), scale * (bias + (flat // W) * step))


def _rot(t, cis):  # t: B, N, heads, C   (cis broadcast over dim 1 = N)
    tc = torch.view_as_complex(t.float().reshape(*t.shape[:-1], -1, 2))
    return torch.view_as_real(tc * cis[None, :, None, :]).flatten(3).type_as(t)


class _LSA(nn.Module):

    def __init__(self, dim, heads, ws):
        super().__init__()
        self.heads, self.ws = heads, ws
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, H, W, auto_scale):
        B, N, C = x.shape
        ws, hd = self.ws, C // self.heads
        cis = _general(hd, ws * ws, ws)
        x = F.pad(x.view(B, H, W, C), (0, 0, 0, (ws - W % ws) % ws, 0, (ws - H % ws) % ws))
        Hp, Wp = x.shape[1:3]
        gh, gw = Hp // ws, Wp // ws
        x = x.reshape(B, gh, ws, gw, ws, C).transpose(2, 3)
        qkv = self.qkv(x).reshape(B, gh * gw, ws * ws, 3, self.heads, hd).permute(3, 0, 2, 1, 4, 5)
        q, k, v = (t.reshape(B, ws * ws, -1, hd) for t in qkv)
        q, k = _rot(q, cis), _rot(k, cis)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        out = ((q @ k.transpose(-2, -1)) * hd**-0.5).softmax(-1) @ v
        out = out.reshape(B, gh * gw, self.heads, ws * ws, hd).transpose(2, 3)
        out = out.reshape(B, gh, gw, ws, ws, C).transpose(2, 3).reshape(B, Hp, Wp, C)
        return self.proj(out[:, :H, :W].reshape(B, N, C))


class _GSA(nn.Module):

    def __init__(self, dim, heads, sr):
        super().__init__()
        self.heads, self.sr_ratio = heads, sr
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        if sr > 1:
            self.sr = nn.Conv2d(dim, dim, sr, sr)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x, H, W, auto_scale):
        B, N, C = x.shape
        hd, sr = C // self.heads, self.sr_ratio
        scale = 14 / H if auto_scale else 1.0
        q_cis = _general(hd, N, W, scale=scale)
        k_cis = _general(hd, H * W // sr // sr, W, step=sr, bias=1.0 - 1.0 / sr, scale=scale)
        q = self.q(x).reshape(B, N, self.heads, hd)
        if sr > 1:
            x = self.norm(self.sr(x.permute(0, 2, 1).reshape(B, C, H, W)).reshape(B, C, -1)
                          .permute(0, 2, 1))
        k, v = self.kv(x).reshape(B, -1, 2, self.heads, hd).permute(2, 0, 1, 3, 4)
        q, k = _rot(q, q_cis), _rot(k, k_cis)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        out = ((q @ k.transpose(-2, -1)) * hd**-0.5).softmax(-1) @ v
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class _Block(nn.Module):

    def __init__(self, dim, heads, ws, sr, lsa):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _LSA(dim, heads, ws) if lsa else _GSA(dim, heads, sr)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim)
        self.gamma_1 = nn.Parameter(1e-4 * torch.ones(dim))
        self.gamma_2 = nn.Parameter(1e-4 * torch.ones(dim))

    def forward(self, x, H, W, auto_scale):
        x = x + self.gamma_1 * self.attn(self.norm1(x), H, W, auto_scale)
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):

    def __init__(self, cin, dim, p):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, p, p)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.proj(x)
        H, W = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), (H, W)


class OfficialPyramidVisionLLaMA(nn.Module):
    """``pllama_wols_{small,base,large}_patch16`` laid out as the official deit code."""

    def __init__(self, dims=(64, 128, 256, 512), depths=(2, 2, 10, 4), heads=(2, 4, 8, 16),
                 num_classes=1000, ws=7, srs=(8, 4, 2, 1), auto_scale=False):
        super().__init__()
        self.auto_scale = auto_scale
        self.patch_embeds = nn.ModuleList(
            [_PatchEmbed(3 if k == 0 else dims[k - 1], dims[k], 4 if k == 0 else 2)
             for k in range(4)])
        self.blocks = nn.ModuleList([
            nn.ModuleList([_Block(dims[k], heads[k], ws, srs[k], lsa=i % 2 == 0)
                           for i in range(depths[k])]) for k in range(4)])
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x):
        B = x.shape[0]
        for k in range(4):
            x, (H, W) = self.patch_embeds[k](x)
            for blk in self.blocks[k]:
                x = blk(x, H, W, self.auto_scale)
            if k < 3:
                x = x.reshape(B, H, W, -1).permute(0, 3, 1, 2)
        x = self.norm(x)
        return self.head(self.norm(x.mean(dim=1)))
