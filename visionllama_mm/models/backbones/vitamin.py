"""ViTamin (Chen et al., "ViTamin: Designing Scalable Vision Models in the Vision-Language Era",
CVPR 2024).

A hybrid: two stages of pre-norm MBConv blocks (LayerNorm, no BN, no SE), a strided-conv
transition to stride 16, then a plain transformer of TFB-GeGLU blocks (the package's
:class:`TransformerBlock` with :class:`Attention` and a :class:`GeGLUFFN` that normalises its input
once more, as the released weights need), global average pooling and a LayerNorm.

    image (B, 3, H, W)
      -> stem: conv3x3/2 -> LN2d + GELU -> conv3x3            (B, C1, H/2, W/2)
      -> stage 0: MBConv-LN x d0 (first stride 2)              (B, C1, H/4, W/4)    out index 0
      -> stage 1: MBConv-LN x d1 (first stride 2)              (B, C2, H/8, W/8)    out index 1
      -> transition: LN2d -> conv3x3/2                          (B, D, H/16, W/16)
      -> tokens + pos_embed (learned; none in XL)              (B, N, D)
      -> L x TFB-GeGLU block                                    (B, N, D)            out index 2
      -> mean over tokens -> fc_norm                            (B, D)   (out_type='avg_featmap')

Parameter names follow timm's ``vitamin_*`` where the module is the same (``stem.*``, the MBConv
blocks' ``pre_norm`` / ``conv1_1x1`` / ``conv2_kxk`` / ``conv3_1x1`` / ``shortcut.expand``,
``fc_norm``); the transformer blocks are the package's shared block (``ln1``, ``attn.qkv``,
``attn.proj``, ``ln2``, ``ffn.norm``, ``ffn.w12`` = timm's ``mlp.w0`` and ``mlp.w1`` stacked,
``ffn.w3``); ``vitamin_convert.py`` maps timm's and OpenCLIP's checkpoints both ways.
The convolutional part runs channels-last.
"""
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmengine.model.weight_init import trunc_normal_
from timm.layers import resample_abs_pos_embed

from ...registry import MODELS
from ..layers import Attention, GeGLUFFN, TransformerBlock
from ..utils import renamed_arg
from .base import VisionBackbone, drop_path_rates

__all__ = ['ViTamin']


def layer_norm_2d(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm ``norm`` over the channels of a (B, C, H, W) map, kept in its memory format
    (channels-last in and out): ``F.layer_norm`` on the (B, H, W, C) view, permuted back.

    Under ``torch.compile`` the affine ``weight * y + bias`` is applied after the permute back
    (inductor fuses it into the same kernel), so that a following convolution gets, and autograd
    saves, a tensor of its own rather than a permuted view: with dynamic shapes (a recompilation
    after an input-size change, or ``dynamic=True``) inductor cannot order the strides of such a
    saved view and fails with "cannot determine truth value of Relational". Eager mode keeps the
    fused ``F.layer_norm`` (the separate affine's backward is 3-8x slower there).
    """
    if not torch.compiler.is_compiling():
        return F.layer_norm(x.permute(0, 2, 3, 1), norm.normalized_shape, norm.weight, norm.bias,
                            norm.eps).permute(0, 3, 1, 2)
    y = F.layer_norm(x.permute(0, 2, 3, 1), norm.normalized_shape, None, None,
                     norm.eps).permute(0, 3, 1, 2)
    return torch.addcmul(norm.bias.to(y.dtype)[:, None, None], y,
                         norm.weight.to(y.dtype)[:, None, None])


class Stem(nn.Module):
    """conv 3x3/2 -> LayerNorm over channels + GELU -> conv 3x3: (B, 3, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int, eps: float = 1e-6):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm1 = nn.LayerNorm(out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.gelu(layer_norm_2d(self.norm1, self.conv1(x))))


class Shortcut(nn.Module):
    """MBConv shortcut of a block that changes resolution and/or width: 3x3/2 average pooling
    with padding 1, padding not counted (``pool``, timm's ``Downsample2d``) when ``stride == 2``,
    then a 1x1 conv (``expand``) when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.pool = (nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
                     if stride == 2 else nn.Identity())
        self.expand = (nn.Conv2d(in_channels, out_channels, 1)
                       if in_channels != out_channels else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.pool(x))


class MBConvLN(nn.Module):
    """Pre-norm inverted bottleneck: ``shortcut(x) + conv3(GELU(dw3x3(GELU(conv1(LN(x))))))``.

    The hidden width is ``4 * out_channels``; a stride-2 block downsamples in its depthwise conv.
    No BatchNorm, squeeze-excitation, layer scale or drop path (as the official ``vitamin.py``).

    Shapes:
        (B, C_in, H, W) -> (B, C_out, ceil(H / stride), ceil(W / stride))
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, eps: float = 1e-6):
        super().__init__()
        mid = 4 * out_channels
        self.shortcut = (Shortcut(in_channels, out_channels, stride)
                         if stride == 2 or in_channels != out_channels else nn.Identity())
        self.pre_norm = nn.LayerNorm(in_channels, eps=eps)
        self.conv1_1x1 = nn.Conv2d(in_channels, mid, 1)
        self.conv2_kxk = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid)
        self.conv3_1x1 = nn.Conv2d(mid, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv1_1x1(layer_norm_2d(self.pre_norm, x)))
        y = self.conv3_1x1(F.gelu(self.conv2_kxk(y)))
        return y + self.shortcut(x)


class Transition(nn.Module):
    """LayerNorm over channels, then conv 3x3/2 to the transformer width:
    (B, C2, H, W) -> (B, D, ceil(H/2), ceil(W/2))."""

    def __init__(self, in_channels: int, out_channels: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(in_channels, eps=eps)
        self.proj = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(layer_norm_2d(self.norm, x))


def _resize_pos_embed(pos_embed: torch.Tensor, new_grid: Tuple[int, int],
                      grid: Tuple[int, int]) -> torch.Tensor:
    """(1, gh*gw, D) -> (1, h*w, D), bicubic with antialiasing (timm's and the authors' resize)."""
    return resample_abs_pos_embed(pos_embed, list(new_grid), list(grid),
                                  num_prefix_tokens=0, interpolation='bicubic', antialias=True)


_resize_pos_embed_eager = torch.compiler.disable(_resize_pos_embed)


@MODELS.register_module()
class ViTamin(VisionBackbone):
    """ViTamin backbone (the image tower of the ViTamin CLIP models).

    Args:
        arch: ``'small'``, ``'base'``, ``'large'`` (= ``'large2'``, whose CLIP model differs only
            in the text tower), ``'xlarge'`` (no position embedding, as timm and the released
            weights), or a dict with ``stem_channels``, ``channels`` (two MBConv widths),
            ``depths`` (two MBConv depths), ``embed_dims``, ``num_layers``, ``num_heads``, and
            optionally ``feedforward_channels`` (the GeGLU hidden width, ``2 * embed_dims``) and
            ``pos_embed`` (True). ``mlp_ratio`` (timm's name: ``feedforward_channels /
            embed_dims``) is read too but deprecated.
        img_size: Input size the learned position embedding is laid out for (224, or 256 / 336 /
            384 for the high-resolution fine-tunes). A checkpoint of another size is resized
            bicubically when it loads; inputs of another size interpolate it on the fly.
        in_channels: Image channels.
        out_indices: Stages returned: 0 (MBConv stage 0, stride 4), 1 (MBConv stage 1,
            stride 8), 2 (the transformer, stride 16); negative counts from the end.
        out_type: ``'avg_featmap'`` (default): one output, the token mean after ``fc_norm``,
            (B, D), what a CLIP head or ``LinearClsHead`` takes; needs ``out_indices=-1``.
            ``'featmap'``: (B, C, h, w) maps of the chosen stages for dense heads.
        drop_path_rate: Stochastic depth, 0 -> rate linearly over the transformer blocks (the
            MBConv blocks have none, as in the official code).
        qkv_bias: Bias of the qkv projection.
        norm_eps: Epsilon of every LayerNorm.
        frozen_stages: 0: nothing; 1: stem + stage 0; 2: + stage 1; 3: + transition, position
            embedding, transformer and ``fc_norm``.
        with_cp: Activation checkpointing of every MBConv and transformer block.
        init_cfg: mmengine initialisation config (default: the official init, see
            :meth:`init_weights`).

    Shapes:
        (B, in_channels, H, W) -> tuple of outputs (see ``out_type``); any H, W >= 16.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['s', 'small'], dict(
            stem_channels=64, channels=(64, 128), depths=(2, 4), embed_dims=384,
            num_layers=14, num_heads=6)),
        **dict.fromkeys(['b', 'base'], dict(
            stem_channels=128, channels=(128, 256), depths=(2, 4), embed_dims=768,
            num_layers=14, num_heads=12)),
        **dict.fromkeys(['l', 'large', 'l2', 'large2'], dict(
            stem_channels=160, channels=(160, 320), depths=(2, 4), embed_dims=1024,
            num_layers=31, num_heads=16)),
        **dict.fromkeys(['xl', 'xlarge'], dict(
            stem_channels=192, channels=(192, 384), depths=(2, 4), embed_dims=1152,
            num_layers=32, num_heads=16, pos_embed=False)),
    }
    arch_keys = ('stem_channels', 'channels', 'depths', 'embed_dims', 'num_layers', 'num_heads')
    arch_optional = ('feedforward_channels', 'pos_embed')
    deprecated_names = ('arch.mlp_ratio', )  # an old arch key still read
    OUT_TYPES = ('avg_featmap', 'featmap')

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 img_size: Union[int, Sequence[int]] = 224,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'avg_featmap',
                 drop_path_rate: float = 0.,
                 qkv_bias: bool = True,
                 norm_eps: float = 1e-6,
                 frozen_stages: int = 0,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, dict) and 'mlp_ratio' in arch:  # a ratio, not a plain renaming
            arch = dict(arch)
            ratio = arch.pop('mlp_ratio')
            ffn = renamed_arg('ViTamin', 'arch.mlp_ratio', ratio, 'arch.feedforward_channels',
                              arch.get('feedforward_channels'))
            if 'embed_dims' in arch and 'feedforward_channels' not in arch:
                arch['feedforward_channels'] = int(arch['embed_dims'] * ffn)
        arch = self.parse_arch(arch)
        self.arch_settings = arch
        stem = self.check_int('stem_channels', arch['stem_channels'])
        channels, depths = tuple(arch['channels']), tuple(arch['depths'])
        if len(channels) != 2 or len(depths) != 2:
            raise ValueError(f'ViTamin: arch channels and depths need two entries (the MBConv '
                             f'stages), got {channels} and {depths}.')
        for c in channels + depths:
            self.check_int('channels / depths', c)
        self.embed_dims = self.check_int('embed_dims', arch['embed_dims'])
        self.num_layers = self.check_int('num_layers', arch['num_layers'])
        num_heads = self.check_heads(self.embed_dims, arch['num_heads'])
        ffn_dims = self.check_int('feedforward_channels',
                                  arch.get('feedforward_channels', 2 * self.embed_dims))
        self.check_choice('out_type', out_type, self.OUT_TYPES)
        self.check_rate('drop_path_rate', drop_path_rate)
        self.check_choice('frozen_stages', frozen_stages, (-1, 0, 1, 2, 3))
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.out_type = out_type
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp
        self.channels = (*channels, self.embed_dims)

        self.stem = Stem(in_channels, stem, eps=norm_eps)
        stages, c_in = [], stem
        for c, d in zip(channels, depths):
            stages.append(nn.Sequential(*[
                MBConvLN(c_in if i == 0 else c, c, stride=2 if i == 0 else 1, eps=norm_eps)
                for i in range(d)]))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.transition = Transition(c_in, self.embed_dims, eps=norm_eps)
        self.grid = tuple(-(-s // 16) for s in self.img_size)
        self.pos_embed = (nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], self.embed_dims))
                          if arch.get('pos_embed', True) else None)

        dpr = drop_path_rates(drop_path_rate, self.num_layers)
        norm = partial(nn.LayerNorm, eps=norm_eps)
        attn = partial(Attention, num_heads=num_heads, qkv_bias=qkv_bias)
        ffn = partial(GeGLUFFN, hidden_dims=ffn_dims, norm_layer=norm)
        self.blocks = nn.ModuleList([
            TransformerBlock(self.embed_dims, attn, ffn, norm_layer=norm, drop_path_rate=dpr[i])
            for i in range(self.num_layers)
        ])
        self.fc_norm = norm(self.embed_dims) if out_type == 'avg_featmap' else None

        if isinstance(out_indices, int):
            out_indices = [out_indices]
        self.out_indices = []
        for index in out_indices:
            i = index + 3 if isinstance(index, int) and index < 0 else index
            if not isinstance(i, int) or not 0 <= i < 3:
                raise ValueError(f'ViTamin: out index {index!r} is out of range; the stages are '
                                 '0 (MBConv, stride 4), 1 (MBConv, stride 8), 2 (transformer).')
            self.out_indices.append(i)
        if out_type == 'avg_featmap' and self.out_indices != [2]:
            raise ValueError('ViTamin: out_type="avg_featmap" pools the transformer only '
                             f'(out_indices=-1); got out_indices={list(out_indices)}. Use '
                             'out_type="featmap" for the MBConv stages.')
        self.num_layer_ids = self.num_layers + 2
        self._freeze_stages()

    # --------------------------------------------------------------------------------- init
    def init_weights(self):
        """The official initialisation unless ``init_cfg`` says otherwise:
        stem and MBConv convs normal(0, sqrt(2 / fan_out)) with zero bias, the transition conv
        PyTorch's default, Linears trunc-normal(0.02) with zero bias, LayerNorms (1, 0),
        ``pos_embed`` trunc-normal(0.02)."""
        if self.init_cfg is not None:
            return super().init_weights()
        for m in [self.stem, *self.stages]:
            for conv in m.modules():
                if isinstance(conv, nn.Conv2d):
                    k = conv.kernel_size[0] * conv.kernel_size[1]
                    fan_out = k * conv.out_channels // conv.groups
                    nn.init.normal_(conv.weight, 0, (2.0 / fan_out) ** 0.5)
                    nn.init.zeros_(conv.bias)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=.02)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A ``pos_embed`` of another grid (a 224 checkpoint into a 384 model) is resized
        bicubically (antialiased, as the released fine-tunes and timm's checkpoint filter)."""
        key = prefix + 'pos_embed'
        if self.pos_embed is not None and key in state_dict:
            src = state_dict[key]
            side = int(round(src.shape[1] ** 0.5)) if src.dim() == 3 else 0
            square = side * side == src.shape[1] if src.dim() == 3 else False
            if src.dim() == 3 and square and (side, side) != self.grid:
                # resized whenever the grids differ, also at an equal token count (14x14 -> 28x7)
                state_dict[key] = resample_abs_pos_embed(
                    src, list(self.grid), [side, side], num_prefix_tokens=0,
                    interpolation='bicubic', antialias=True)
                MMLogger.get_current_instance().info(
                    f'ViTamin: resized {key} from {side}x{side} to '
                    f'{self.grid[0]}x{self.grid[1]} tokens.')
            elif src.dim() == 3 and not square and src.shape[1] != self.pos_embed.shape[1]:
                raise ValueError(f'ViTamin: cannot resize checkpoint pos_embed of shape '
                                 f'{tuple(src.shape)} (not a square grid) to '
                                 f'{tuple(self.pos_embed.shape)}.')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------------------ forward
    def position_embedding(self, h: int, w: int) -> Optional[torch.Tensor]:
        """(1, h*w, D) position embedding of an h x w token grid (interpolated from ``grid``).

        Under ``torch.compile`` the interpolation (for inputs of a size other than ``img_size``)
        runs eagerly, outside the graph (one graph break): torch's antialiased bicubic resize
        cannot take the symbolic sizes of a dynamic-shape graph."""
        if self.pos_embed is None or (h, w) == self.grid:
            return self.pos_embed
        resize = _resize_pos_embed_eager if torch.compiler.is_compiling() else _resize_pos_embed
        return resize(self.pos_embed, (h, w), self.grid)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.check_batch(x, 'ViTamin')
        x = self.stem(x.contiguous(memory_format=torch.channels_last))
        outs = []
        for i, stage in enumerate(self.stages):
            for block in stage:
                x = self.run_block(block, x)
            if i in self.out_indices:
                outs.append(x.contiguous())
        if self.out_type == 'featmap' and 2 not in self.out_indices:
            return tuple(outs)  # the transformer would only cost time (and unused parameters)
        x = self.transition(x)
        B, D, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        pos = self.position_embedding(h, w)
        if pos is not None:
            x = x + pos
        for block in self.blocks:
            x = self.run_block(block, x)
        if self.out_type == 'avg_featmap':
            return (self.fc_norm(x.mean(dim=1)), )
        if 2 in self.out_indices:
            outs.append(x.transpose(1, 2).reshape(B, D, h, w).contiguous())
        return tuple(outs)

    # ------------------------------------------------------------------ freezing, layer ids
    def frozen_modules(self) -> List[nn.Module]:
        frozen: List[nn.Module] = []
        if self.frozen_stages >= 1:
            frozen += [self.stem, self.stages[0]]
        if self.frozen_stages >= 2:
            frozen.append(self.stages[1])
        if self.frozen_stages >= 3:
            frozen += [self.transition, *self.blocks]
            if self.pos_embed is not None:
                frozen.append(self.pos_embed)
            if self.fc_norm is not None:
                frozen.append(self.fc_norm)
        return frozen

    def layer_id(self, name: str) -> Optional[int]:
        """As timm's ViTamin groups: the convolutional part and ``pos_embed`` -> 0,
        ``blocks.i`` -> i + 1, ``fc_norm`` -> the last id (num_layers + 1)."""
        if name.startswith(('stem', 'stages', 'transition', 'pos_embed')):
            return 0
        if name.startswith('blocks.'):
            return int(name.split('.')[1]) + 1
        return None
