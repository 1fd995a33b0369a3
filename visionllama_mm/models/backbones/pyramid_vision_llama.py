"""Pyramid VisionLLaMA (Twins-SVT layout, spec §3).

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
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmpretrain.models.backbones.base_backbone import BaseBackbone

from ...registry import MODELS
from ..layers import PatchEmbed, RotaryEmbedding2D, apply_rope, grid_positions
from .vision_llama import VisionLLaMABlock

__all__ = ['PyramidVisionLLaMA', 'GSAttention', 'convert_official_pyramid']


class GSAttention(nn.Module):
    """Global sub-sampled attention with RoPE on queries and keys.

    Keys/values come from ``kv(LN(Conv_sr(x)))`` when ``sr > 1`` (else from ``x``).

    Args:
        embed_dims: Channels C.
        num_heads: Heads.
        sr_ratio: Sub-sampling stride of the keys/values.
        qkv_bias: Bias of ``q`` and ``kv``.
        norm_eps: Epsilon of the LayerNorm after the sub-sampling conv.

    Shapes:
        x: (B, H*W, C); ``ctx = ((H, W), q_rope, k_rope)`` with tables for H*W queries and
        (H/sr)*(W/sr) keys -> (B, H*W, C).
    """

    def __init__(self, embed_dims: int, num_heads: int, sr_ratio: int, qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0., norm_eps: float = 1e-5):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = embed_dims // num_heads
        self.sr_ratio = sr_ratio
        self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.kv = nn.Linear(embed_dims, embed_dims * 2, bias=qkv_bias)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(embed_dims, embed_dims, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, ctx) -> torch.Tensor:
        (H, W), q_rope, k_rope = ctx
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        if self.sr_ratio > 1:
            x = self.sr(x.transpose(1, 2).reshape(B, C, H, W)).flatten(2).transpose(1, 2)
            x = self.norm(x)
        k, v = self.kv(x).reshape(B, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, q_rope), apply_rope(k, k_rope)
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B, N, C)))


def _gsa_block(embed_dims, num_heads, ffn_dims, sr_ratio, qkv_bias, drop_rate, attn_drop_rate,
               drop_path_rate, layer_scale_init_value, norm_eps) -> VisionLLaMABlock:
    """A VisionLLaMA block whose attention is :class:`GSAttention` (the rest is shared)."""
    block = VisionLLaMABlock(embed_dims, num_heads, ffn_dims, qkv_bias=qkv_bias, ffn_bias=False,
                             drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
                             drop_path_rate=drop_path_rate,
                             layer_scale_init_value=layer_scale_init_value, norm_eps=norm_eps)
    block.attn = GSAttention(embed_dims, num_heads, sr_ratio, qkv_bias=qkv_bias,
                             attn_drop=attn_drop_rate, proj_drop=drop_rate, norm_eps=norm_eps)
    return block


@MODELS.register_module()
class PyramidVisionLLaMA(BaseBackbone):
    """Pyramid VisionLLaMA backbone (``pllama_wols_*`` of the official code).

    Args:
        arch: ``'small'``/``'base'``/``'large'`` (``'s'``/``'b'``/``'l'``) or a dict with
            ``embed_dims``, ``depths``, ``num_heads``, ``ffn_dims`` (one entry per stage).
        img_size: Training resolution (the AS2DRoPE anchor for ``auto_scale_rule='anchor'``).
        in_channels: Image channels.
        patch_sizes: Patch-embedding strides per stage.
        window_size: LSA window.
        sr_ratios: GSA key/value sub-sampling per stage.
        out_indices: Stages returned.
        out_type: ``'featmap'`` (dense: (B, C_k, H/s_k, W/s_k) per returned stage) or
            ``'avg_featmap'`` (classification: the official ``norm(mean(norm(x)))``, (B, C);
            needs ``out_indices=(3, )``).
        norm_after_stage: With ``'featmap'``, pass each returned stage through its own fresh
            LayerNorm (``out_norms``), as the official seg/det backbones (spec §3.5).
        auto_scale: AS2DRoPE in GSA (LSA windows are never scaled).
        auto_scale_rule: ``'official'``: ``s = 14 / H_stage`` on both axes in every stage (the
            released seg/det code, spec Q6); ``'anchor'``: ``s_h = (img_h / stride) / H_stage``,
            ``s_w = (img_w / stride) / W_stage`` (Eq. 4 per axis).
        gsa_key_pos: ``'official'``: key positions of the released code (raster split with the
            full-resolution width, step sr, offset 1 - 1/sr; spec §3.3 / Q4; reproduces the
            released weights); ``'paper'``: each pooled key at the centre of the window it covers.
        rope_ratio / rope_theta: Rotated fraction of a head and RoPE base.
        qkv_bias: Bias of q/k/v projections.
        drop_rate, attn_drop_rate: Dropouts.
        drop_path_rate: Stochastic depth, linear from 0 over all blocks.
        layer_scale_init_value: LayerScale init (1e-4 in the released models although their name
            says "wols", spec Q5; 0 disables it).
        norm_eps: LayerNorm epsilon (1e-5 as in the official code).
        frozen_stages: Freeze the first ``frozen_stages`` stages (patch embedding, blocks and
            their output norms).
        with_cp: Activation checkpointing of every block.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['s', 'small'], dict(
            embed_dims=[64, 128, 256, 512], depths=[2, 2, 10, 4], num_heads=[2, 4, 8, 16],
            ffn_dims=[256, 512, 768, 1536])),
        **dict.fromkeys(['b', 'base'], dict(
            embed_dims=[96, 192, 384, 768], depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24],
            ffn_dims=[256, 512, 1024, 2048])),
        **dict.fromkeys(['l', 'large'], dict(
            embed_dims=[128, 256, 512, 1024], depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
            ffn_dims=[512, 768, 1536, 2816])),
    }

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
        arch = self._parse_arch(arch)
        self.embed_dims = arch['embed_dims']
        self.depths = arch['depths']
        for name, value in (('out_type', out_type), ('auto_scale_rule', auto_scale_rule),
                            ('gsa_key_pos', gsa_key_pos)):
            allowed = {'out_type': ('featmap', 'avg_featmap'),
                       'auto_scale_rule': ('official', 'anchor'),
                       'gsa_key_pos': ('official', 'paper')}[name]
            if value not in allowed:
                raise ValueError(f'PyramidVisionLLaMA: {name} must be one of {allowed}, '
                                 f'got {value!r}.')
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
        self.window_size = window_size
        self.sr_ratios = list(sr_ratios)
        self.out_type = out_type
        self.auto_scale = auto_scale
        self.auto_scale_rule = auto_scale_rule
        self.gsa_key_pos = gsa_key_pos
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp

        n = sum(self.depths)
        dpr = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # linear 0 -> rate
        self.patch_embeds = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.ropes = nn.ModuleList()
        cur = 0
        for k in range(4):
            dim, heads = self.embed_dims[k], arch['num_heads'][k]
            self.patch_embeds.append(PatchEmbed(
                in_channels if k == 0 else self.embed_dims[k - 1], dim, patch_sizes[k], norm=True,
                norm_eps=norm_eps, owner='PyramidVisionLLaMA'))
            blocks = []
            for i in range(self.depths[k]):
                common = dict(qkv_bias=qkv_bias, drop_rate=drop_rate,
                              attn_drop_rate=attn_drop_rate, drop_path_rate=dpr[cur + i],
                              layer_scale_init_value=layer_scale_init_value, norm_eps=norm_eps)
                if i % 2 == 0:  # LSA
                    blocks.append(VisionLLaMABlock(dim, heads, arch['ffn_dims'][k], ffn_bias=False,
                                                   window_size=window_size, **common))
                else:  # GSA
                    blocks.append(_gsa_block(dim, heads, arch['ffn_dims'][k], self.sr_ratios[k],
                                             **common))
            self.stages.append(nn.ModuleList(blocks))
            self.ropes.append(RotaryEmbedding2D(dim // heads, ratio=rope_ratio, theta=rope_theta))
            cur += self.depths[k]
        self.norm_after_stage = norm_after_stage
        if out_type == 'avg_featmap':
            # one module, applied per token and again after the average (spec §3.4)
            self.norm = nn.LayerNorm(self.embed_dims[-1], eps=norm_eps)
        elif norm_after_stage:
            self.out_norms = nn.ModuleList(
                [nn.LayerNorm(self.embed_dims[i], eps=norm_eps) for i in self.out_indices])
        self._gsa_cache: 'OrderedDict[tuple, tuple]' = OrderedDict()
        self._freeze_stages()

    def _parse_arch(self, arch):
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise KeyError(f'PyramidVisionLLaMA: unknown arch {arch!r}; choose one of '
                               f'{sorted(set(self.arch_zoo))} or pass a dict.')
            return dict(self.arch_zoo[arch.lower()])
        essential = {'embed_dims', 'depths', 'num_heads', 'ffn_dims'}
        if not isinstance(arch, dict) or not essential <= set(arch) or any(
                len(arch[k]) != 4 for k in essential):
            raise KeyError('PyramidVisionLLaMA: a custom arch must be a dict with 4-entry lists '
                           f'{sorted(essential)}, got {arch!r}.')
        return dict(arch)

    # ---------------------------------------------------------------------------------- positions
    def _scale(self, k: int, H: int, W: int) -> Tuple[float, float]:
        """(s_x, s_y) of stage ``k`` at an H x W token grid."""
        if not self.auto_scale:
            return 1.0, 1.0
        if self.auto_scale_rule == 'official':
            return 14. / H, 14. / H
        stride = self.strides[k]
        return self.img_size[1] / stride / W, self.img_size[0] / stride / H

    def key_positions(self, k: int, H: int, W: int) -> torch.Tensor:
        """Unscaled (x, y) of the (H/sr)*(W/sr) GSA keys of stage ``k`` -> (M, 2)."""
        sr = self.sr_ratios[k]
        if self.gsa_key_pos == 'paper' or sr == 1:
            return grid_positions(H // sr, W // sr) * sr + (sr - 1) / 2
        n = torch.arange((H * W) // (sr * sr), dtype=torch.float32)
        offset = 1. - 1. / sr  # the released code: full-resolution W, step sr, offset 1 - 1/sr
        return torch.stack([offset + (n % W) * sr, offset + torch.div(n, W, rounding_mode='floor')
                            * sr], dim=-1)

    #: GSA tables kept (least recently used dropped first); multi-scale detection training sees
    #: many input shapes and the stage-1 query table alone is H/4 * W/4 * head_dim floats.
    gsa_cache_size: int = 32

    def gsa_tables(self, k: int, H: int, W: int, device) -> tuple:
        """(query table, key table) of stage ``k``: ``(cos, sin)`` pairs for the H*W queries and
        the (H/sr)*(W/sr) keys, cached per (stage, H, W, device) in a small LRU cache."""
        key = (k, H, W, torch.device(device), torch.is_inference_mode_enabled())
        cached = self._gsa_cache.get(key)
        if cached is not None:
            self._gsa_cache.move_to_end(key)
            return cached
        rope = self.ropes[k]
        scale = torch.tensor(self._scale(k, H, W), device=device)
        with torch.autocast(device_type=torch.device(device).type, enabled=False):
            q = rope.table(grid_positions(H, W, device=device) * scale)
            kt = rope.table(self.key_positions(k, H, W).to(device) * scale)
        self._gsa_cache[key] = cached = (q, kt)
        while len(self._gsa_cache) > self.gsa_cache_size:
            self._gsa_cache.popitem(last=False)
        return cached

    def _apply(self, fn, *args, **kwargs):
        self._gsa_cache = OrderedDict()
        return super()._apply(fn, *args, **kwargs)

    # ------------------------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, 3, H, W), H and W multiples of 32 -> one output per ``out_indices``."""
        total = max(s * r for s, r in zip(self.strides, self.sr_ratios))
        if x.dim() == 4 and (x.shape[-2] % total or x.shape[-1] % total):
            raise ValueError(
                f'PyramidVisionLLaMA: input size {x.shape[-2]}x{x.shape[-1]} must be a multiple '
                f'of {total} (total stride x GSA sub-sampling); pad it, e.g. '
                f'pad_size_divisor={total} (mmdet) or size_divisor={total} (mmseg).')
        B = x.shape[0]
        outs = []
        for k in range(4):
            x, (H, W) = self.patch_embeds[k](x)
            lsa_rope = self.ropes[k](self.window_size, self.window_size, device=x.device)
            q_rope, k_rope = self.gsa_tables(k, H, W, x.device)
            for i, block in enumerate(self.stages[k]):
                ctx = lsa_rope if i % 2 == 0 else ((H, W), q_rope, k_rope)
                if self.with_cp and self.training and x.requires_grad:
                    x = cp.checkpoint(block, x, ctx, (H, W), use_reentrant=False)
                else:
                    x = block(x, ctx, (H, W))
            if self.out_type == 'avg_featmap' and k == 3:
                outs.append(self.norm(self.norm(x).mean(dim=1)))
            elif self.out_type == 'featmap' and k in self.out_indices:
                y = self.out_norms[self.out_indices.index(k)](x) if self.norm_after_stage else x
                outs.append(y.transpose(1, 2).reshape(B, -1, H, W))
            x = x.transpose(1, 2).reshape(B, -1, H, W)
        return tuple(outs)

    def _freeze_stages(self):
        for k in range(min(self.frozen_stages, 4)):
            modules = [self.patch_embeds[k], self.stages[k]]
            if self.out_type == 'featmap' and self.norm_after_stage and k in self.out_indices:
                modules.append(self.out_norms[self.out_indices.index(k)])
            for module in modules:
                module.eval()
                for p in module.parameters():
                    p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id for layer-wise lr decay: blocks numbered across stages from 1; the patch
        embedding of stage k shares the id of the block before it (0 for stage 0); the rest gets
        the last id. Returns ``(layer_id, total_blocks + 2)``."""
        num_layers = sum(self.depths) + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        parts = param_name[len(prefix):].split('.')
        if parts[0] == 'patch_embeds':
            return sum(self.depths[:int(parts[1])]), num_layers
        if parts[0] == 'stages':
            k, i = int(parts[1]), int(parts[2])
            return sum(self.depths[:k]) + i + 1, num_layers
        return num_layers - 1, num_layers


def convert_official_pyramid(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official deit-code ``pllama_wols_*`` checkpoint -> our ``ImageClassifier`` keys.

    ``patch_embeds.k.proj`` -> ``backbone.patch_embeds.k.projection``; ``blocks.k.i`` ->
    ``backbone.stages.k.i`` (``norm1/2`` -> ``ln1/2``, ``mlp.c_fc1`` + ``mlp.c_fc2`` ->
    ``ffn.w12``, ``mlp.c_proj`` -> ``ffn.w3``, ``gamma_1/2`` -> ``ls1/2.gamma``, attention names
    unchanged: ``qkv``/``proj`` (LSA), ``q``/``kv``/``sr``/``norm``/``proj`` (GSA)); ``norm`` ->
    ``backbone.norm`` (used twice by the head, ``out_type='avg_featmap'``); ``head`` -> ``head.fc``.
    """
    out: Dict[str, torch.Tensor] = {}
    gates, ups = {}, {}
    renames = {'norm1': 'ln1', 'norm2': 'ln2', 'gamma_1': 'ls1.gamma', 'gamma_2': 'ls2.gamma',
               'mlp.c_proj': 'ffn.w3'}
    for key, value in state_dict.items():
        parts = key.split('.')
        if parts[0] == 'patch_embeds':
            sub = 'projection' if parts[2] == 'proj' else parts[2]
            out[f'backbone.patch_embeds.{parts[1]}.{sub}.{parts[3]}'] = value
        elif parts[0] == 'blocks':
            prefix = f'backbone.stages.{parts[1]}.{parts[2]}.'
            rest = '.'.join(parts[3:])
            if rest.startswith('mlp.c_fc1'):
                gates[prefix] = value
            elif rest.startswith('mlp.c_fc2'):
                ups[prefix] = value
            elif rest.startswith('attn.'):
                out[prefix + rest] = value
            else:
                for old, new in renames.items():
                    if rest == old or rest.startswith(old + '.'):
                        out[prefix + new + rest[len(old):]] = value
                        break
                else:
                    raise KeyError(f'convert_official_pyramid: unexpected key {key!r}')
        elif parts[0] == 'norm':
            out[f'backbone.norm.{parts[1]}'] = value
        elif parts[0] == 'head':
            out[f'head.fc.{parts[1]}'] = value
        else:
            raise KeyError(f'convert_official_pyramid: unexpected key {key!r}')
    if set(gates) != set(ups):
        raise KeyError('convert_official_pyramid: mlp.c_fc1 / mlp.c_fc2 do not pair up')
    for prefix in gates:
        out[prefix + 'ffn.w12.weight'] = torch.cat([gates[prefix], ups[prefix]], dim=0)
    return out
