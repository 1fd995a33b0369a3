"""A pre-norm transformer block built from parts (attention, FFN, norm), as timm's ``Block``."""
from functools import partial
from typing import Callable, Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from mmpretrain.models.utils import LayerScale

from .window import window_partition, window_unpartition

__all__ = ['TransformerBlock']


class TransformerBlock(nn.Module):
    """``x + DP(ls1(attn(ln1(x))))``, then ``x + DP(ls2(ffn(ln2(x))))``.

    The parts are given, not chosen by flags: a VisionLLaMA block is ``attn_layer=Attention`` +
    ``mlp_layer=SwiGLUFFN``; a pyramid GSA block the same with ``Attention(sr_ratio=...)``; a
    LLaMA decoder block would pass an RMSNorm ``norm_layer``.

    Args:
        embed_dims: Channels C.
        attn_layer: ``attn_layer(embed_dims) -> nn.Module`` (e.g. ``partial(Attention,
            num_heads=6)``); called as ``attn(x, hw=hw, **attn_kwargs)``.
        mlp_layer: ``mlp_layer(embed_dims) -> nn.Module`` (e.g. ``partial(SwiGLUFFN,
            hidden_dims=1024)``).
        norm_layer: ``norm_layer(embed_dims) -> nn.Module``; LayerNorm(eps=1e-6) by default.
        layer_scale_init_value: LayerScale init (mmpretrain's ``LayerScale``); 0 disables it.
        drop_path_rate: Stochastic depth of this block (mmcv's ``DropPath``).
        ffn_drop_path: Apply drop path to the FFN branch too (the official MAE fork does not).
        window_size: If > 0, attention runs inside ws x ws windows (ViTDet, pyramid LSA): the
            normalised tokens are zero-padded to multiples of ws (no mask) and cropped back.
        part_names: Attribute names of (norm 1, attention, norm 2, FFN); the default
            ``('ln1', 'attn', 'ln2', 'ffn')``, or e.g. transformers' LLaMA names
            ``('input_layernorm', 'self_attn', 'post_attention_layernorm', 'mlp')`` so a checkpoint
            in that layout loads as it is.

    Shapes:
        x: (B, N, C) with ``hw = (H, W)`` its token grid (needed with windows or a sub-sampling
        attention) -> (B, N, C).
    """

    def __init__(self,
                 embed_dims: int,
                 attn_layer: Callable[[int], nn.Module],
                 mlp_layer: Callable[[int], nn.Module],
                 norm_layer: Callable[[int], nn.Module] = partial(nn.LayerNorm, eps=1e-6),
                 layer_scale_init_value: float = 0.,
                 drop_path_rate: float = 0.,
                 ffn_drop_path: bool = True,
                 window_size: int = 0,
                 part_names: Tuple[str, str, str, str] = ('ln1', 'attn', 'ln2', 'ffn')):
        super().__init__()
        if len(part_names) != 4 or len(set(part_names)) != 4:
            raise ValueError(f'TransformerBlock: part_names must be 4 distinct names (norm 1, '
                             f'attention, norm 2, FFN), got {part_names!r}.')
        self.window_size = window_size
        self.part_names = tuple(part_names)
        for name, part in zip(self.part_names, (norm_layer, attn_layer, norm_layer, mlp_layer)):
            self.add_module(name, part(embed_dims))
        if layer_scale_init_value > 0:
            self.ls1 = LayerScale(embed_dims, layer_scale_init_value=layer_scale_init_value)
            self.ls2 = LayerScale(embed_dims, layer_scale_init_value=layer_scale_init_value)
        else:
            self.ls1 = self.ls2 = nn.Identity()
        if not 0. <= drop_path_rate < 1.:
            raise ValueError(f'TransformerBlock: drop_path_rate must be in [0, 1), '
                             f'got {drop_path_rate!r}.')
        self.drop_path_rate = float(drop_path_rate)
        self.ffn_drop_path_rate = self.drop_path_rate if ffn_drop_path else 0.
        self.drop_path1 = DropPath(self.drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.drop_path2 = (DropPath(self.ffn_drop_path_rate) if self.ffn_drop_path_rate > 0
                           else nn.Identity())

    def extra_repr(self) -> str:
        return (f'drop_path_rate={self.drop_path_rate}, '
                f'ffn_drop_path_rate={self.ffn_drop_path_rate}, window_size={self.window_size}')

    def forward(self, x: torch.Tensor, hw: Optional[Tuple[int, int]] = None,
                **attn_kwargs) -> torch.Tensor:
        ln1, attn, ln2, ffn = (self._modules[n] for n in self.part_names)
        y = ln1(x)
        if self.window_size > 0:
            y, padded_hw = window_partition(y, hw, self.window_size)
            y = attn(y, **attn_kwargs)
            y = window_unpartition(y, hw, padded_hw, self.window_size)
        else:
            y = attn(y, hw=hw, **attn_kwargs)
        x = x + self.drop_path1(self.ls1(y))
        return x + self.drop_path2(self.ls2(ffn(ln2(x))))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before LayerScale became mmpretrain's: ``ls{1,2}.gamma`` -> ``.weight``
        for i in (1, 2):
            old = f'{prefix}ls{i}.gamma'
            if old in state_dict:
                state_dict[f'{prefix}ls{i}.weight'] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
