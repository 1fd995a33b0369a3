"""An independent reference of the released LVM tokenizer, written from the official
``evaluation/vqlm_demo/vqvae_muse.py`` layout: nested modules with the official attribute names,
attention as two explicit ``bmm`` products, the quantizer as a one-hot matmul over the full
distance matrix, the decoder walking its levels from the last one. It shares no code with
``visionllama_mm.models.lvm.vqgan`` and is used only to check that a state dict loaded into both
gives the same ids and pixels."""
import math

import torch
import torch.nn as nn


def gn(c):
    return nn.GroupNorm(num_groups=32, num_channels=c, eps=1e-6, affine=True)


class RefRes(nn.Module):

    def __init__(self, cin, cout):
        super().__init__()
        self.cin, self.cout = cin, cout
        self.norm1, self.conv1 = gn(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = gn(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1, 1, 0)

    def forward(self, x):
        h = self.conv1(torch.sigmoid(self.norm1(x)) * self.norm1(x))
        n2 = self.norm2(h)
        h = self.conv2(n2 * torch.sigmoid(n2))
        return h + (self.nin_shortcut(x) if self.cin != self.cout else x)


class RefAttn(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.norm = gn(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = self.norm(x)
        q = self.q(h).reshape(b, c, hh * ww).permute(0, 2, 1)
        k = self.k(h).reshape(b, c, hh * ww)
        w = torch.softmax(torch.bmm(q, k) * c**-0.5, dim=2)
        v = self.v(h).reshape(b, c, hh * ww)
        out = torch.bmm(v, w.permute(0, 2, 1)).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class RefSample(nn.Module):

    def __init__(self, c, down):
        super().__init__()
        self.down = down
        self.conv = nn.Conv2d(c, c, 3, 2, 0) if down else nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        if self.down:
            return self.conv(nn.functional.pad(x, (0, 1, 0, 1), mode='constant', value=0))
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode='nearest'))


class RefLevel(nn.Module):

    def __init__(self, cin, cout, n, attn):
        super().__init__()
        blocks, attns = [], []
        for _ in range(n):
            blocks.append(RefRes(cin, cout))
            cin = cout
            if attn:
                attns.append(RefAttn(cout))
        self.block, self.attn = nn.ModuleList(blocks), nn.ModuleList(attns)

    def run(self, x):
        for i, blk in enumerate(self.block):
            x = blk(x)
            if len(self.attn) > 1:
                x = self.attn[i](x)
        return x


class RefMid(nn.Module):

    def __init__(self, c, no_attn):
        super().__init__()
        self.block_1 = RefRes(c, c)
        if not no_attn:
            self.attn_1 = RefAttn(c)
        self.block_2 = RefRes(c, c)
        self.no_attn = no_attn

    def forward(self, x):
        x = self.block_1(x)
        if not self.no_attn:
            x = self.attn_1(x)
        return self.block_2(x)


class RefMuseVQGAN(nn.Module):
    """config: the released config.json fields."""

    def __init__(self, config):
        super().__init__()
        ch, mult, nr = config['hidden_channels'], list(config['channel_mult']), \
            config['num_res_blocks']
        n, attn_res = len(mult), list(config['attn_resolutions'])
        self.n = n
        enc = nn.Module()
        enc.conv_in = nn.Conv2d(config['num_channels'], ch, 3, 1, 1)
        enc.down = nn.ModuleList()
        res = config['resolution']
        in_mult = [1] + mult
        for i in range(n):
            lvl = RefLevel(ch * in_mult[i], ch * mult[i], nr, res in attn_res)
            if i != n - 1:
                lvl.downsample = RefSample(ch * mult[i], True)
                res //= 2
            enc.down.append(lvl)
        enc.mid = RefMid(ch * mult[-1], config['no_attn_mid_block'])
        enc.norm_out = gn(ch * mult[-1])
        enc.conv_out = nn.Conv2d(ch * mult[-1], config['z_channels'], 3, 1, 1)
        self.encoder = enc

        dec = nn.Module()
        dec.conv_in = nn.Conv2d(config['z_channels'], ch * mult[-1], 3, 1, 1)
        dec.mid = RefMid(ch * mult[-1], config['no_attn_mid_block'])
        ups = [None] * n
        res = config['resolution'] // 2**(n - 1)
        for i in range(n - 1, -1, -1):
            cin = ch * mult[-1] if i == n - 1 else ch * mult[i + 1]
            lvl = RefLevel(cin, ch * mult[i], nr + 1, res in attn_res)
            if i != 0:
                lvl.upsample = RefSample(ch * mult[i], False)
                res *= 2
            ups[i] = lvl
        dec.up = nn.ModuleList(ups)
        dec.norm_out = gn(ch * mult[0])
        dec.conv_out = nn.Conv2d(ch * mult[0], config['num_channels'], 3, 1, 1)
        self.decoder = dec

        self.quant_conv = nn.Conv2d(config['z_channels'], config['quantized_embed_dim'], 1)
        self.post_quant_conv = nn.Conv2d(config['quantized_embed_dim'], config['z_channels'], 1)
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Embedding(config['num_embeddings'],
                                               config['quantized_embed_dim'])
        self.K = config['num_embeddings']

    def encode(self, x):
        """-> (z_q (B, C, h, w), ids (B, h*w))"""
        e = self.encoder
        h = e.conv_in(x)
        for lvl in e.down:
            h = lvl.run(h)
            if hasattr(lvl, 'downsample'):
                h = lvl.downsample(h)
        h = e.mid(h)
        h = e.norm_out(h)
        h = e.conv_out(h * torch.sigmoid(h))
        z = self.quant_conv(h).permute(0, 2, 3, 1).contiguous()
        flat = z.reshape(-1, z.shape[-1])
        w = self.quantize.embedding.weight
        d = (flat**2).sum(1, keepdim=True) + (w**2).sum(1)[None] - 2 * flat @ w.t()
        idx = d.argmin(1)
        onehot = torch.zeros(idx.shape[0], self.K)
        onehot[torch.arange(idx.shape[0]), idx] = 1
        zq = (onehot @ w).view(z.shape).permute(0, 3, 1, 2)
        return zq, idx.view(z.shape[0], -1)

    def decode_code(self, ids):
        b, n = ids.shape
        s = int(math.sqrt(n))
        zq = self.quantize.embedding(ids).reshape(b, s, s, -1).permute(0, 3, 1, 2)
        d = self.decoder
        h = d.mid(d.conv_in(self.post_quant_conv(zq)))
        for i in range(self.n - 1, -1, -1):
            lvl = d.up[i]
            h = lvl.run(h)
            if hasattr(lvl, 'upsample'):
                h = lvl.upsample(h)
        h = d.norm_out(h)
        return d.conv_out(h * torch.sigmoid(h))
