"""DiT-LLaMA: the class-conditional diffusion transformer of VisionLLaMA (paper §4.1),
and the original DiT block for the paper's comparison.

A latent (B, C, H, W) is cut into p x p patches (a strided conv), run through adaLN-Zero blocks
conditioned on ``c = t_emb + y_emb``, and unpatchified to (B, C_out, H, W); ``C_out = 2C`` with
``learn_sigma`` (noise and the variance interpolation). ``block_type='llama'`` (DiT-LLaMA): the
attention rotates q/k with 2-D RoPE over the token grid (no absolute position embedding) and the
MLP is the bias-free SwiGLU; ``block_type='dit'``: DiT's fixed sin-cos position embedding and
GELU-tanh MLP. Parameter names follow the official ``dit/models.py`` where the layers are the
same (``x_embedder``, ``t_embedder``, ``y_embedder``, ``blocks.i.adaLN_modulation``,
``final_layer``); the attention and SwiGLU are this package's shared layers (``qkv``/``proj``,
fused ``w12``/``w3``).
"""
import math
from functools import partial
from typing import Dict, Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.models.utils import build_2d_sincos_position_embedding
from timm.layers import Mlp

from ...engine.pretrained import PretrainedInitMixin
from ...registry import MODELS
from ..layers import Attention, RotaryEmbedding, SwiGLUFFN
from ..utils import checkpoint_call, parse_arch

__all__ = ['DiTLLaMA']


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: ``x * (1 + scale) + shift`` with (B, C) conditioning on (B, N, C) tokens."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    """Timesteps (B,) (may be fractional) -> (B, D): sinusoidal features [cos, sin] of
    ``freq_dims`` channels (max period 10000), then Linear-SiLU-Linear.

    The features are computed in float32 whatever the autocast or parameter dtype: the angles
    reach ``t`` radians (up to 1000 for DDPM), where half precision would be off by a radian."""

    def __init__(self, embed_dims: int, freq_dims: int = 256):
        super().__init__()
        self.freq_dims = freq_dims
        self.mlp = nn.Sequential(nn.Linear(freq_dims, embed_dims), nn.SiLU(),
                                 nn.Linear(embed_dims, embed_dims))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dims // 2
        freqs = torch.exp(-math.log(10000) *
                          torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        feats = torch.cat([args.cos(), args.sin()], dim=-1)
        return self.mlp(feats.to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """Class labels (B,) -> (B, D). With ``dropout_prob > 0`` the table has one more row, the
    null class ``num_classes`` used for classifier-free guidance; in training each label is
    replaced by it with probability ``dropout_prob``."""

    def __init__(self, num_classes: int, embed_dims: int, dropout_prob: float):
        super().__init__()
        if not 0. <= dropout_prob < 1.:
            raise ValueError(f'DiTLLaMA: class_dropout_prob must be in [0, 1), got {dropout_prob}.')
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'DiTLLaMA: num_classes must be an int >= 1 (the labels of the '
                             f'dataset), got {num_classes!r}.')
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.embedding_table = nn.Embedding(num_classes + int(dropout_prob > 0), embed_dims)

    def forward(self, labels: torch.Tensor, drop: Optional[torch.Tensor] = None) -> torch.Tensor:
        if drop is None and self.training and self.dropout_prob > 0:
            drop = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
        if drop is not None:
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        return self.embedding_table(labels)


class DiTBlock(nn.Module):
    """adaLN-Zero block: ``x + g1 * attn(mod(LN(x), s1, b1))``, then the same with the MLP;
    the six (B, D) modulations come from ``adaLN_modulation(c)`` (zero-initialised)."""

    def __init__(self, embed_dims: int, num_heads: int, block_type: str):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(embed_dims, num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(embed_dims, elementwise_affine=False, eps=1e-6)
        if block_type == 'llama':
            # LLaMA's hidden size: 2/3 of 4D rounded up to a multiple of 256 (B 2048, XL 3072)
            self.mlp = SwiGLUFFN(embed_dims, _round_up(int(8 * embed_dims / 3), 256))
        else:
            self.mlp = Mlp(embed_dims, 4 * embed_dims,
                           act_layer=partial(nn.GELU, approximate='tanh'))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(embed_dims, 6 * embed_dims))

    def forward(self, x: torch.Tensor, c: torch.Tensor, rope=None) -> torch.Tensor:
        s1, b1, g1, s2, b2, g2 = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), s1, b1), rope=rope)
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), s2, b2))


class FinalLayer(nn.Module):
    """adaLN (shift, scale) then Linear to ``p * p * C_out`` per token (both zero-initialised)."""

    def __init__(self, embed_dims: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(embed_dims, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(embed_dims, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(embed_dims, 2 * embed_dims))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


@MODELS.register_module()
class DiTLLaMA(PretrainedInitMixin, BaseModule):
    """DiT-LLaMA denoiser (``block_type='llama'``) or the original DiT (``'dit'``).

    Args:
        arch: ``'s'``, ``'b'``, ``'l'``, ``'xl'`` (paper §4.1: 384/12/6, 768/12/12, 1024/24/16,
            1152/28/16 as dims/layers/heads) or a dict with ``embed_dims``, ``num_layers``,
            ``num_heads`` (``depth``, the official name, is read too but deprecated).
        patch_size: Side of the latent patches (2 or 4 in the paper).
        in_channels: Latent channels (4 for the SD VAE; 3 for pixel-space models).
        input_size: Latent side (32 for 256 px images); sets DiT's position embedding.
        num_classes: Classes; label ``num_classes`` is the null class when
            ``class_dropout_prob > 0``.
        class_dropout_prob: Probability of the null class in training (0.1).
        learn_sigma: Predict the variance too: ``2 * in_channels`` output channels.
        block_type: ``'llama'`` (2-D RoPE, SwiGLU) or ``'dit'`` (sin-cos PE, GELU-tanh MLP).
        with_cp: Activation checkpointing of every block while training.

    Shapes:
        ``forward(x, t, y)``: x (B, C, H, W) with H, W multiples of p, t (B,) timesteps, y (B,)
        labels -> (B, C_out, H, W).
    """

    arch_zoo: Dict[str, Dict[str, int]] = {
        's': dict(embed_dims=384, num_layers=12, num_heads=6),
        'b': dict(embed_dims=768, num_layers=12, num_heads=12),
        'l': dict(embed_dims=1024, num_layers=24, num_heads=16),
        'xl': dict(embed_dims=1152, num_layers=28, num_heads=16),
    }
    arch_keys = ('embed_dims', 'num_layers', 'num_heads')
    arch_aliases = {'depth': 'num_layers'}

    def __init__(self, arch: Union[str, dict] = 'xl', patch_size: int = 2, in_channels: int = 4,
                 input_size: int = 32, num_classes: int = 1000, class_dropout_prob: float = 0.1,
                 learn_sigma: bool = True, block_type: str = 'llama', with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        arch = parse_arch(arch, self.arch_zoo, required=self.arch_keys,
                          aliases=self.arch_aliases, owner='DiTLLaMA')
        if block_type not in ('llama', 'dit'):
            raise ValueError(f'DiTLLaMA: block_type must be "llama" or "dit", got {block_type!r}.')
        if input_size % patch_size:
            raise ValueError(f'DiTLLaMA: input_size {input_size} is not a multiple of patch_size '
                             f'{patch_size}.')
        D, heads = arch['embed_dims'], arch['num_heads']
        self.embed_dims, self.patch_size, self.block_type = D, patch_size, block_type
        self.in_channels, self.input_size = in_channels, input_size
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.with_cp = with_cp
        self.x_embedder = nn.Module()
        self.x_embedder.proj = nn.Conv2d(in_channels, D, patch_size, stride=patch_size)
        self.t_embedder = TimestepEmbedder(D)
        self.num_classes = num_classes  # label num_classes is the null class (guidance)
        self.y_embedder = LabelEmbedder(num_classes, D, class_dropout_prob)
        if block_type == 'dit':
            # DiT's fixed 2-D sin-cos table (MAE's): the first half encodes a token's column, the
            # second its row, each [sin, cos]; mmpretrain's table has the row half first
            grid = input_size // patch_size
            table = build_2d_sincos_position_embedding((grid, grid), D, cls_token=False)
            self.register_buffer('pos_embed', torch.cat(table.chunk(2, dim=-1)[::-1], dim=-1))
        else:
            self.rope = RotaryEmbedding(D // heads, ndim=2)
        self.blocks = nn.ModuleList(DiTBlock(D, heads, block_type)
                                    for _ in range(arch['num_layers']))
        self.final_layer = FinalLayer(D, patch_size, self.out_channels)
        self._init()

    def _init(self):
        """The official initialisation: Xavier-uniform Linears (zero bias), the patch conv like a
        Linear, N(0, 0.02) label table and timestep MLP, zero adaLN and final layers."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for mod in [b.adaLN_modulation[-1] for b in self.blocks] + [
                self.final_layer.adaLN_modulation[-1], self.final_layer.linear]:
            nn.init.zeros_(mod.weight)
            nn.init.zeros_(mod.bias)

    def init_weights(self):
        if self.init_cfg:  # a pretrained checkpoint; otherwise the constructor's init stands
            super().init_weights()

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                drop_labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, C, H, W = x.shape
        p = self.patch_size
        if C != self.in_channels or H % p or W % p:
            raise ValueError(f'DiTLLaMA: expected (B, {self.in_channels}, H, W) with H, W '
                             f'multiples of {p}; got {tuple(x.shape)}.')
        h, w = H // p, W // p
        tokens = self.x_embedder.proj(x).flatten(2).transpose(1, 2)  # (B, h*w, D)
        rope = None
        if self.block_type == 'dit':
            if h * w != self.pos_embed.shape[1]:
                raise ValueError(f'DiTLLaMA: block_type="dit" has a fixed {self.pos_embed.shape[1]}'
                                 f'-token position embedding; got a {h}x{w} grid.')
            tokens = tokens + self.pos_embed.to(tokens.dtype)
        else:
            rope = self.rope.grid(h, w, device=x.device)
        c = self.t_embedder(t) + self.y_embedder(y, drop_labels)
        for block in self.blocks:
            tokens = checkpoint_call(block, tokens, c, rope,
                                     enabled=self.with_cp and self.training)
        out = self.final_layer(tokens, c)  # (B, h*w, p*p*C_out)
        out = out.view(B, h, w, p, p, self.out_channels).permute(0, 5, 1, 3, 2, 4)
        return out.reshape(B, self.out_channels, H, W)

    def forward_with_cfg(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                         cfg_scale: float, guided_channels: Optional[int] = 3) -> torch.Tensor:
        """Classifier-free guidance: ``uncond + cfg_scale * (cond - uncond)`` from one doubled
        batch (labels ``y``, then the null class).

        ``guided_channels``: the leading output channels that are guided. The official sampler
        guides 3 (of the 4 noise channels; kept "for exact reproducibility", so its FIDs use it);
        ``None`` guides all ``in_channels`` noise channels, the standard form. The rest (the other
        noise channels, the variance) is the conditional output.

        Shapes: x (B, C, H, W), t (B,), y (B,) -> (B, C_out, H, W).
        """
        if self.y_embedder.dropout_prob == 0:
            raise ValueError('DiTLLaMA.forward_with_cfg: the model has no null class '
                             '(class_dropout_prob=0), so it cannot be guided.')
        null = torch.full_like(y, self.y_embedder.num_classes)
        out = self(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
        cond, uncond = out.chunk(2)
        k = self.in_channels if guided_channels is None else guided_channels
        guided = uncond[:, :k] + cfg_scale * (cond[:, :k] - uncond[:, :k])
        return torch.cat([guided, cond[:, k:]], dim=1)
