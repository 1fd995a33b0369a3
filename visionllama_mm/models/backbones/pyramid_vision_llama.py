"""Pyramid VisionLLaMA (Twins-SVT layout).

Four stages at strides 4/8/16/32. Each stage: a patch embedding (conv + LayerNorm), then blocks that
alternate **LSA** (even index: attention inside 7x7 windows with a window-local 2D RoPE) and **GSA**
(odd index: every token attends to keys/values sub-sampled by a conv of stride ``sr``, queries and
keys rotated by their grid positions). Pre-norm LayerNorm blocks with SwiGLU and LayerScale; no
class token, no position embedding, no PEG.

    image (B, 3, H, W)
      -> stage k: PatchEmbed (stride 4, 2, 2, 2) -> [LSA block, GSA block] x depth/2
      -> classification: norm(mean(norm(tokens)))  (the official head normalises twice)
      -> dense: one fresh LayerNorm per returned stage -> (B, C_k, H/s_k, W/s_k)
"""
import math
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...registry import MODELS
from ..layers import (Attention, PatchEmbed, RopeTable, RotaryEmbedding, SwiGLUFFN,
                      TransformerBlock, grid_positions)
from .base import VisionBackbone, drop_path_rates

__all__ = ['PyramidVisionLLaMA']


@MODELS.register_module()
class PyramidVisionLLaMA(VisionBackbone):
    """Pyramid VisionLLaMA backbone (``pllama_wols_*`` of the official code).

    Any input size is accepted, as mmseg's Twins and Swin do: the image is zero-padded (right,
    bottom) to a multiple of ``size_divisor`` (total stride x GSA sub-sampling, 32 by default) and
    every returned map is cropped back to ``ceil(H / stride) x ceil(W / stride)``. At multiples of
    ``size_divisor`` nothing is padded and the outputs are those of the official code.

    Args:
        arch: ``'small'``/``'base'``/``'large'`` (``'s'``/``'b'``/``'l'``) or a dict with
            ``embed_dims``, ``depths``, ``num_heads``, ``feedforward_channels`` (the SwiGLU
            hidden widths), one entry per stage, named as in mmpretrain's staged backbones
            (Twins, Swin). ``ffn_dims``, the old name of ``feedforward_channels``, is read too
            but deprecated.
        img_size: Training resolution (the AS2DRoPE anchor for ``auto_scale_rule='anchor'``;
            each stage grid at this size must be divisible by its ``sr_ratios`` entry).
        in_channels: Image channels.
        patch_sizes: Patch-embedding strides per stage.
        window_size: LSA window (an int >= 1).
        sr_ratios: GSA key/value sub-sampling per stage (4 ints >= 1).
        out_indices: Stages returned.
        out_type: ``'featmap'`` (dense: (B, C_k, ceil(H/s_k), ceil(W/s_k)) per returned stage)
            or ``'avg_featmap'`` (classification: the official ``norm(mean(norm(x)))``, (B, C);
            needs ``out_indices=(3, )``).
        norm_after_stage: With ``'featmap'``, pass each returned stage through its own fresh
            LayerNorm (``out_norms``), as the official seg/det backbones do.
        auto_scale: AS2DRoPE in GSA (LSA windows are never scaled).
        auto_scale_rule: ``'official'``: ``s = 14 / H_stage`` on both axes in every stage (the
            released seg/det code); ``'anchor'``: ``s_h = (img_h / stride) / H_stage``,
            ``s_w = (img_w / stride) / W_stage`` (Eq. 4 per axis).
        gsa_key_pos: ``'official'``: key positions of the released code (raster split with the
            full-resolution width, step sr, offset 1 - 1/sr; reproduces the released weights);
            ``'paper'``: each pooled key at the centre of the window it covers.
        rope_ratio / rope_theta: Rotated fraction of a head and RoPE base.
        qkv_bias: Bias of q/k/v projections.
        drop_rate, attn_drop_rate: Dropouts.
        drop_path_rate: Stochastic depth, linear from 0 over all blocks.
        layer_scale_init_value: LayerScale init (1e-4 in the released models although their name
            says "wols", i.e. without LayerScale; 0 disables it).
        norm_eps: LayerNorm epsilon (1e-5 as in the official code).
        rope_cache_size: RoPE tables kept per stage (multi-scale detection sees many shapes).
        frozen_stages: Freeze the first ``frozen_stages`` stages (patch embedding, blocks and
            their output norms).
        with_cp: Activation checkpointing of every block.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['s', 'small'], dict(
            embed_dims=[64, 128, 256, 512], depths=[2, 2, 10, 4], num_heads=[2, 4, 8, 16],
            feedforward_channels=[256, 512, 768, 1536])),
        **dict.fromkeys(['b', 'base'], dict(
            embed_dims=[96, 192, 384, 768], depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24],
            feedforward_channels=[256, 512, 1024, 2048])),
        **dict.fromkeys(['l', 'large'], dict(
            embed_dims=[128, 256, 512, 1024], depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
            feedforward_channels=[512, 768, 1536, 2816])),
    }
    arch_keys = ('embed_dims', 'depths', 'num_heads', 'feedforward_channels')
    arch_aliases = {'ffn_dims': 'feedforward_channels'}

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 img_size: Union[int, Sequence[int]] = 224,
                 in_channels: int = 3,
                 patch_sizes: Sequence[int] = (4, 2, 2, 2),
                 window_size: int = 7,
                 sr_ratios: Sequence[int] = (8, 4, 2, 1),
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 out_type: str = 'featmap',
                 norm_after_stage: bool = True,
                 auto_scale: bool = False,
                 auto_scale_rule: str = 'official',
                 gsa_key_pos: str = 'official',
                 rope_ratio: float = 1.0,
                 rope_theta: float = 10000.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-4,
                 norm_eps: float = 1e-5,
                 rope_cache_size: int = 32,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        if init_cfg is None:
            init_cfg = [
                dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
                dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
                dict(type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu',
                     distribution='normal', bias=0.),
            ]
        super().__init__(init_cfg=init_cfg)
        arch = self.parse_arch(arch)
        for key in self.arch_keys:
            if len(arch[key]) != 4:
                raise ValueError(f'PyramidVisionLLaMA: arch[{key!r}] needs one entry per stage '
                                 f'(4), got {arch[key]!r}.')
        self.embed_dims = [self.check_int(f'embed_dims[{k}]', d)
                           for k, d in enumerate(arch['embed_dims'])]
        self.depths = [self.check_int(f'depths[{k}]', d) for k, d in enumerate(arch['depths'])]
        num_heads = [self.check_heads(d, h, where=f' (stage {k})')
                     for k, (d, h) in enumerate(zip(self.embed_dims, arch['num_heads']))]
        self.check_choice('out_type', out_type, ('featmap', 'avg_featmap'))
        self.check_choice('auto_scale_rule', auto_scale_rule, ('official', 'anchor'))
        self.check_choice('gsa_key_pos', gsa_key_pos, ('official', 'paper'))
        for name, seq in (('patch_sizes', patch_sizes), ('sr_ratios', sr_ratios)):
            if len(seq) != 4:
                raise ValueError(f'PyramidVisionLLaMA: {name} needs one entry per stage (4), '
                                 f'got {tuple(seq)!r}.')
            for k, v in enumerate(seq):
                self.check_int(f'{name}[{k}]', v)
        self.window_size = self.check_int('window_size', window_size)
        for name, rate in (('drop_rate', drop_rate), ('attn_drop_rate', attn_drop_rate),
                           ('drop_path_rate', drop_path_rate)):
            self.check_rate(name, rate)
        self.check_rope_ratio(rope_ratio, [d // h for d, h in zip(self.embed_dims, num_heads)])
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not out_indices or any(not -4 <= i < 4 for i in out_indices):
            raise ValueError('PyramidVisionLLaMA: out_indices must name stages 0..3 (or -4..-1), '
                             f'got {out_indices!r}.')
        self.out_indices = sorted({i % 4 for i in out_indices})
        if out_type == 'avg_featmap' and self.out_indices != [3]:
            raise ValueError('PyramidVisionLLaMA: out_type="avg_featmap" returns the last stage '
                             f'only; got out_indices={list(out_indices)}.')
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.strides = [math.prod(patch_sizes[:i + 1]) for i in range(4)]
        self.sr_ratios = list(sr_ratios)
        for k, (stride, sr) in enumerate(zip(self.strides, self.sr_ratios)):
            grid = [s // stride for s in self.img_size]
            if any(s % stride for s in self.img_size) or any(g % sr for g in grid):
                raise ValueError(
                    f'PyramidVisionLLaMA: sr_ratios[{k}]={sr} does not divide the stage-{k} grid '
                    f'{grid[0]}x{grid[1]} (img_size {self.img_size}, stride {stride}).')
        #: inputs are padded to a multiple of this (32 for the released models)
        self.size_divisor = math.lcm(*[s * r for s, r in zip(self.strides, self.sr_ratios)])
        self.out_type = out_type
        self.auto_scale = auto_scale
        self.auto_scale_rule = auto_scale_rule
        self.gsa_key_pos = gsa_key_pos
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp

        dpr = drop_path_rates(drop_path_rate, sum(self.depths), 'linear')
        self.patch_embeds = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.ropes = nn.ModuleList()
        cur = 0
        for k in range(4):
            dim, heads, sr = self.embed_dims[k], num_heads[k], self.sr_ratios[k]
            self.patch_embeds.append(PatchEmbed(
                in_channels if k == 0 else self.embed_dims[k - 1], dim, patch_sizes[k], norm=True,
                norm_eps=norm_eps, owner='PyramidVisionLLaMA'))
            common = dict(num_heads=heads, qkv_bias=qkv_bias, attn_drop=attn_drop_rate,
                          proj_drop=drop_rate)
            lsa = partial(Attention, **common)
            gsa = partial(Attention, sr_ratio=sr, norm_eps=norm_eps, **common)
            ffn = partial(SwiGLUFFN, hidden_dims=arch['feedforward_channels'][k], bias=False,
                          drop=drop_rate)
            # even blocks: LSA (windowed); odd blocks: GSA, in every stage as in the official code
            self.stages.append(nn.ModuleList([
                TransformerBlock(dim, lsa if i % 2 == 0 else gsa, ffn,
                                 norm_layer=partial(nn.LayerNorm, eps=norm_eps),
                                 layer_scale_init_value=layer_scale_init_value,
                                 drop_path_rate=dpr[cur + i],
                                 window_size=window_size if i % 2 == 0 else 0)
                for i in range(self.depths[k])]))
            if not auto_scale:
                anchor, axes = None, 'xy'
            elif auto_scale_rule == 'official':
                anchor, axes = 14, 'y'
            else:
                anchor, axes = tuple(s / self.strides[k] for s in self.img_size), 'xy'
            self.ropes.append(RotaryEmbedding(dim // heads, ratio=rope_ratio, theta=rope_theta,
                                              anchor=anchor, scale_axes=axes,
                                              cache_size=rope_cache_size))
            cur += self.depths[k]
        self.norm_after_stage = norm_after_stage
        if out_type == 'avg_featmap':
            # one module, applied per token and again after the average (as the official head)
            self.norm = nn.LayerNorm(self.embed_dims[-1], eps=norm_eps)
        elif norm_after_stage:
            self.out_norms = nn.ModuleList(
                [nn.LayerNorm(self.embed_dims[i], eps=norm_eps) for i in self.out_indices])
        self.num_layer_ids = sum(self.depths) + 2
        self._freeze_stages()

    # ---------------------------------------------------------------------------------- positions
    def key_positions(self, k: int, H: int, W: int) -> torch.Tensor:
        """Unscaled (x, y) of the (H/sr)*(W/sr) GSA keys of stage ``k`` -> (M, 2)."""
        sr = self.sr_ratios[k]
        if self.gsa_key_pos == 'paper' or sr == 1:
            return grid_positions(H // sr, W // sr) * sr + (sr - 1) / 2
        n = torch.arange((H * W) // (sr * sr), dtype=torch.float32)
        offset = 1. - 1. / sr  # the released code: full-resolution W, step sr, offset 1 - 1/sr
        return torch.stack([offset + (n % W) * sr, offset + torch.div(n, W, rounding_mode='floor')
                            * sr], dim=-1)

    def gsa_tables(self, k: int, H: int, W: int, device) -> Tuple[RopeTable, RopeTable]:
        """(query table, key table) of stage ``k`` at an H x W grid: H*W queries and
        (H/sr)*(W/sr) keys, both scaled like the grid; cached by the stage's RoPE module."""
        rope = self.ropes[k]

        def keys(dev):
            pos = self.key_positions(k, H, W).to(dev)
            return rope.table(pos * pos.new_tensor(rope.scale(H, W)))

        key_table = rope.cached(('gsa_keys', self.gsa_key_pos, self.sr_ratios[k], H, W), keys,
                                device)
        return rope.grid(H, W, device=device), key_table

    # ------------------------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, 3, H, W), any H and W -> one output per ``out_indices``: (B, C_k, ceil(H/s_k),
        ceil(W/s_k)) maps, or the (B, C) pooled feature for ``out_type='avg_featmap'``."""
        self.check_batch(x, 'PyramidVisionLLaMA')
        B, _, H0, W0 = x.shape
        d = self.size_divisor
        if H0 % d or W0 % d:
            x = F.pad(x, (0, -W0 % d, 0, -H0 % d))
        outs = []
        for k in range(4):
            x, (H, W) = self.patch_embeds[k](x)
            s = self.strides[k]
            h, w = -(-H0 // s), -(-W0 // s)  # the valid (unpadded) part of this stage
            lsa_rope = self.ropes[k].grid(self.window_size, self.window_size, scaled=False,
                                          device=x.device)
            q_rope, k_rope = self.gsa_tables(k, H, W, x.device)
            for i, block in enumerate(self.stages[k]):
                if i % 2 == 0:
                    x = self.run_block(block, x, hw=(H, W), rope=lsa_rope)
                else:
                    x = self.run_block(block, x, hw=(H, W), rope=q_rope, key_rope=k_rope)
            if self.out_type == 'avg_featmap' and k == 3:
                y = self.norm(x).view(B, H, W, -1)[:, :h, :w]
                outs.append(self.norm(y.mean(dim=(1, 2))))
            elif self.out_type == 'featmap' and k in self.out_indices:
                y = self.out_norms[self.out_indices.index(k)](x) if self.norm_after_stage else x
                y = y.transpose(1, 2).reshape(B, -1, H, W)
                outs.append(y[:, :, :h, :w] if (h, w) != (H, W) else y)
            x = x.transpose(1, 2).reshape(B, -1, H, W)
        return tuple(outs)

    def frozen_modules(self) -> List[nn.Module]:
        frozen = []
        for k in range(min(self.frozen_stages, 4)):
            frozen += [self.patch_embeds[k], self.stages[k]]
            if self.out_type == 'featmap' and self.norm_after_stage and k in self.out_indices:
                frozen.append(self.out_norms[self.out_indices.index(k)])
        return frozen

    def layer_id(self, name: str) -> Optional[int]:
        """Blocks numbered across stages from 1; the patch embedding of stage k shares the id of
        the block before it (0 for stage 0); the rest gets the last id, total_blocks + 1."""
        parts = name.split('.')
        if parts[0] == 'patch_embeds':
            return sum(self.depths[:int(parts[1])])
        if parts[0] == 'stages':
            k, i = int(parts[1]), int(parts[2])
            return sum(self.depths[:k]) + i + 1
        return None
