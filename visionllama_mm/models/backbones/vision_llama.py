"""Plain VisionLLaMA (Chu et al., "VisionLLaMA: A Unified LLaMA Backbone for Vision Tasks", ECCV 2024).

A pre-norm ViT whose blocks are LLaMA blocks: LayerNorm, attention with 2D RoPE (or AS2DRoPE) on
queries and keys, and a SwiGLU feed-forward. There is no additive position embedding; the class
token, when used, is rotated at the position the official code gives it (``cls_token_pos``).

    image (B, 3, H, W)
      -> PatchEmbed (conv P x P)                      (B, h*w, C),  h, w = H/P, W/P
      -> [cls] + tokens                               (B, 1 + h*w, C)
      -> L x TransformerBlock(Attention + SwiGLU)(x, rope.grid(h, w))
      -> final LayerNorm (ln1) -> out_type            cls token | GAP + ln2 | feature map
"""
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model.weight_init import trunc_normal_

from ...engine.pretrained import split_pretrained
from ...registry import MODELS
from ..layers import Attention, PatchEmbed, RotaryEmbedding, SwiGLUFFN, TransformerBlock
from .base import VisionBackbone, drop_path_rates

__all__ = ['VisionLLaMA']


@MODELS.register_module()
class VisionLLaMA(VisionBackbone):
    """Plain VisionLLaMA backbone.

    Args:
        arch: ``'small'``/``'base'``/``'large'`` (or ``'s'``/``'b'``/``'l'``); the released MAE
            widths ``'mae-base'``/``'mae-b'`` and ``'mae-large'``/``'mae-l'`` (SwiGLU hidden
            8192 / 11008: the fork's ``round_up(int(ViT ffn * 8/3), 256)``); or a dict
            with ``embed_dims``, ``num_layers``, ``num_heads``, ``feedforward_channels`` (the
            SwiGLU hidden width itself).
        img_size: Training resolution; with ``auto_scale`` it sets the AS2DRoPE anchor grid
            ``img_size / patch_size``.
        patch_size: Patch side. Classification outputs need inputs divisible by it; the dense
            ``out_type='featmap'`` pads other sizes (right/bottom) to a ceil(H/P) x ceil(W/P) grid.
        in_channels: Image channels.
        out_indices: Blocks whose outputs are returned (negative counts from the end).
        out_type: ``'cls_token'``, ``'avg_featmap'`` (GAP over patches + ``ln2``), ``'featmap'``
            (B, C, h, w) or ``'raw'`` (B, N, C).
        with_cls_token: Prepend a learnable class token.
        cls_token_pos: RoPE position of the class token: ``'official'`` = (x=w-1, y=-1), what the
            released deit code computes under PyTorch >= 1.13; ``'legacy'`` = (x=w-1, y=0), the
            same code under its pinned PyTorch 1.7 (shares the top-right patch's position);
            ``'none'`` = not rotated.
        auto_scale: Use AS2DRoPE with the anchor grid of ``img_size``.
        rope_ratio: Fraction of each head's channels that are rotated, in (0, 1].
        rope_theta: RoPE base frequency.
        qkv_bias: Bias of the qkv projections.
        ffn_bias: Bias of the SwiGLU Linears.
        ffn_drop_path: Stochastic depth on the FFN branch as well.
        drop_rate: Dropout after the patch embedding and inside the blocks.
        attn_drop_rate: Attention-weight dropout.
        drop_path_rate: Maximum stochastic-depth rate, in [0, 1).
        drop_path_schedule: ``'linear'`` (0 -> rate over depth, mmpretrain default) or
            ``'uniform'`` (every block ``rate``, DeiT III and the supervised VisionLLaMA).
        layer_scale_init_value: LayerScale init (1e-4 in the supervised models, 0 = off).
        norm_eps: LayerNorm epsilon.
        window_size: If > 0, blocks not in ``global_attn_indexes`` attend inside ws x ws windows
            with a window-local RoPE table (as in ViTDet); needs ``with_cls_token=False``.
        global_attn_indexes: Blocks that keep global attention when ``window_size > 0``.
        final_norm: Apply ``ln1`` after the last block.
        frozen_stages: If > 0, freeze the patch embedding, class token and the first
            ``frozen_stages`` blocks (and the final norms when every block is frozen).
        with_cp: Activation checkpointing of every block.
        init_cfg: mmengine initialisation config.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['s', 'small'], dict(
            embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1024)),
        **dict.fromkeys(['b', 'base'], dict(
            embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=2048)),
        **dict.fromkeys(['l', 'large'], dict(
            embed_dims=1024, num_layers=24, num_heads=16, feedforward_channels=2816)),
        **dict.fromkeys(['mae-b', 'mae-base'], dict(
            embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=8192)),
        **dict.fromkeys(['mae-l', 'mae-large'], dict(
            embed_dims=1024, num_layers=24, num_heads=16, feedforward_channels=11008)),
    }
    arch_keys = ('embed_dims', 'num_layers', 'num_heads', 'feedforward_channels')
    OUT_TYPES = ('raw', 'cls_token', 'featmap', 'avg_featmap')
    CLS_TOKEN_POS = ('official', 'legacy', 'none')
    num_extra_tokens: int

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'cls_token',
                 with_cls_token: bool = True,
                 cls_token_pos: str = 'official',
                 auto_scale: bool = False,
                 rope_ratio: float = 1.0,
                 rope_theta: float = 10000.,
                 qkv_bias: bool = True,
                 ffn_bias: bool = False,
                 ffn_drop_path: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 drop_path_schedule: str = 'linear',
                 layer_scale_init_value: float = 0.,
                 norm_eps: float = 1e-6,
                 window_size: int = 0,
                 global_attn_indexes: Sequence[int] = (),
                 final_norm: bool = True,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        if init_cfg is None:
            init_cfg = [
                dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
                dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
            ]
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self.parse_arch(arch)
        self.embed_dims = self.check_int('embed_dims', self.arch_settings['embed_dims'])
        self.num_layers = self.check_int('num_layers', self.arch_settings['num_layers'])
        num_heads = self.check_heads(self.embed_dims, self.arch_settings['num_heads'])
        ffn_dims = self.check_int('feedforward_channels',
                                  self.arch_settings['feedforward_channels'])
        self.check_choice('out_type', out_type, self.OUT_TYPES)
        self.check_choice('cls_token_pos', cls_token_pos, self.CLS_TOKEN_POS)
        if out_type == 'cls_token' and not with_cls_token:
            raise ValueError('VisionLLaMA: out_type="cls_token" needs with_cls_token=True.')
        self.check_int('window_size', window_size, minimum=0)
        if window_size > 0 and with_cls_token:
            raise ValueError('VisionLLaMA: windowed attention (window_size > 0) needs '
                             'with_cls_token=False.')
        for name, rate in (('drop_rate', drop_rate), ('attn_drop_rate', attn_drop_rate),
                           ('drop_path_rate', drop_path_rate)):
            self.check_rate(name, rate)
        self.check_rope_ratio(rope_ratio, [self.embed_dims // num_heads])
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.patch_size = self.check_int('patch_size', patch_size)
        self.out_type = out_type
        self.with_cls_token = with_cls_token
        self.num_extra_tokens = int(with_cls_token)
        self.cls_token_pos = cls_token_pos
        self.auto_scale = auto_scale
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp
        self.final_norm = final_norm

        self.patch_embed = PatchEmbed(in_channels, self.embed_dims, patch_size,
                                      pad=out_type == 'featmap', owner='VisionLLaMA')
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims)) if with_cls_token else None
        self.drop_after_pos = nn.Dropout(drop_rate)
        head_dim = self.embed_dims // num_heads
        anchor = tuple(s // patch_size for s in self.img_size) if auto_scale else None
        self.rope = RotaryEmbedding(head_dim, ratio=rope_ratio, theta=rope_theta, anchor=anchor)
        self.window_size = window_size

        dpr = drop_path_rates(drop_path_rate, self.num_layers, drop_path_schedule)
        global_attn_indexes = {i % self.num_layers for i in global_attn_indexes}
        attn = partial(Attention, num_heads=num_heads, qkv_bias=qkv_bias,
                       attn_drop=attn_drop_rate, proj_drop=drop_rate)
        ffn = partial(SwiGLUFFN, hidden_dims=ffn_dims, bias=ffn_bias, drop=drop_rate)
        self.layers = nn.ModuleList([
            TransformerBlock(
                self.embed_dims, attn, ffn, norm_layer=partial(nn.LayerNorm, eps=norm_eps),
                layer_scale_init_value=layer_scale_init_value, drop_path_rate=dpr[i],
                ffn_drop_path=ffn_drop_path,
                window_size=0 if i in global_attn_indexes else window_size)
            for i in range(self.num_layers)
        ])
        self.ln1 = nn.LayerNorm(self.embed_dims, eps=norm_eps) if final_norm else nn.Identity()
        self.ln2 = (nn.LayerNorm(self.embed_dims, eps=norm_eps)
                    if out_type == 'avg_featmap' else nn.Identity())

        if isinstance(out_indices, int):
            out_indices = [out_indices]
        self.out_indices = []
        for index in out_indices:
            i = index + self.num_layers if index < 0 else index
            if not 0 <= i < self.num_layers:
                raise ValueError(f'VisionLLaMA: out index {index} is out of range for '
                                 f'{self.num_layers} layers.')
            self.out_indices.append(i)
        self.num_layer_ids = self.num_layers + 2
        self._freeze_stages()

    def init_weights(self):
        super().init_weights()
        pretrained = bool(split_pretrained(self.init_cfg)[0])  # any Pretrained entry
        if not pretrained and self.cls_token is not None:
            trunc_normal_(self.cls_token, std=.02)

    def cls_token_prefix(self, w: int) -> tuple:
        """RoPE prefix rows of the class token for a grid of width ``w`` (see ``cls_token_pos``):
        ``()`` without a class token, ``(None, )`` (identity) when it is not rotated."""
        if not self.with_cls_token:
            return ()
        if self.cls_token_pos == 'none':
            return (None, )
        return ((w - 1., -1. if self.cls_token_pos == 'official' else 0.), )

    def rope_table(self, h: int, w: int, device=None):
        """RoPE table of the token sequence of an ``h x w`` grid (class token first):
        (num_extra_tokens + h*w, d_r/2)."""
        return self.rope.grid(h, w, prefix=self.cls_token_prefix(w), device=device)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, in_channels, H, W) -> tuple of one output per ``out_indices`` (see ``out_type``)."""
        self.check_batch(x, 'VisionLLaMA')
        B = x.shape[0]
        x, (h, w) = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)
        x = self.drop_after_pos(x)
        rope = self.rope_table(h, w, device=x.device)
        # windows are never auto-scaled (nor in the official code): a window-local, unscaled table
        window_rope = (self.rope.grid(self.window_size, self.window_size, scaled=False,
                                      device=x.device) if self.window_size > 0 else None)

        outs = []
        for i, layer in enumerate(self.layers):
            table = window_rope if layer.window_size > 0 else rope
            x = self.run_block(layer, x, hw=(h, w), rope=table)
            if i == self.num_layers - 1:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, (h, w)))
        return tuple(outs)

    def _format_output(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        if self.out_type == 'raw':
            return x
        if self.out_type == 'cls_token':
            return x[:, 0]
        patch_tokens = x[:, self.num_extra_tokens:]
        if self.out_type == 'featmap':
            B, _, C = patch_tokens.shape
            return patch_tokens.transpose(1, 2).reshape(B, C, *hw)
        return self.ln2(patch_tokens.mean(dim=1))  # avg_featmap

    def frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages <= 0:
            return []
        frozen = [self.patch_embed, self.drop_after_pos, *self.layers[:self.frozen_stages]]
        if self.frozen_stages >= self.num_layers:
            frozen += [self.ln1, self.ln2]
        if self.cls_token is not None:
            frozen.append(self.cls_token)
        return frozen

    def layer_id(self, name: str) -> Optional[int]:
        """As mmpretrain's ``VisionTransformer``: patch_embed / cls_token -> 0, ``layers.i`` ->
        i + 1, everything else (final norms) -> the last id, num_layers + 1."""
        if name.startswith(('cls_token', 'patch_embed', 'pos_embed')):
            return 0
        if name.startswith('layers.'):
            return int(name.split('.')[1]) + 1
        return None
