"""ConvNeXt V2 (Woo et al. 2023): mmpretrain's ConvNeXt with GRN and no LayerScale.

The modules are mmpretrain's own (``ConvNeXtBlock(use_grn=True, layer_scale_init_value=0.)``,
``GRN``, ``LN2d``) in the module tree of mmpretrain's ``ConvNeXt`` (``downsample_layers``,
``stages``, ``norm{i}``), so parameter names and counts are mmpretrain's, its checkpoints load
unchanged, and the FCMAE sparse encoder (:mod:`..selfsup.fcmae`) loads into this class with no
renaming. The tree is assembled here rather than by ``ConvNeXt.__init__``, which cannot build on
the meta device (it calls ``.item()`` on its drop-path ``linspace``). What this class adds:

- the V2 arch table only (atto ... huge; ``small`` / ``xlarge`` exist only in V1) with a
  ``ValueError`` listing the names;
- any input size for dense heads: zero-padded to a multiple of 32 inside, every map cropped back
  to ``ceil(H / stride)`` (at multiples of 32 nothing changes);
- the block as timm's (depth-wise conv on the map, then LayerNorm, MLP and GRN over the channels of
  a (B, H, W, C) view) in the input's memory format: NCHW by default, channels-last when the
  input is (no layout is forced);
- activation checkpointing through torch's non-reentrant checkpoint (the stock block calls the
  reentrant default, which torch now warns about);
- ``get_layer_depth`` for both layer-decay schemes of the paper: ``'single'`` (one id
  per block, ConvNeXt V2 A/F/P/N/T) and ``'group'`` (12 groups, B/L/H; mmpretrain's numbering);
- argument checks that fail at construction.

    image (B, 3, H, W) -> stem (conv 4x4/4 + LN) -> stage 0 -> [LN + conv 2x2/2 -> stage i] x 3
    stage i: blocks  x + drop_path(pw2(GRN(GELU(pw1(LN(dwconv7x7(x)))))))
    out: (B, C_3) = LN(mean over H, W) by default; maps (B, C_i, H/2^(i+2), W/2^(i+2)) with
         ``gap_before_final_norm=False``, each after its own LN (``norm{i}``).
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import ModuleList, Sequential
from mmpretrain.models.backbones.convnext import ConvNeXt, ConvNeXtBlock
from mmpretrain.models.utils import build_norm_layer

from ...registry import MODELS
from ..layers import grn_channels_last, norm_channels
from .base import VisionBackbone, drop_path_rates

__all__ = ['ConvNeXtV2']

_DEFAULT_INIT = [
    dict(type='TruncNormal', layer=['Conv2d', 'Linear'], std=.02, bias=0.),
    dict(type='Constant', layer=['LayerNorm'], val=1., bias=0.),
]


def _block_forward(x: torch.Tensor, block: ConvNeXtBlock) -> torch.Tensor:
    """mmpretrain's ``ConvNeXtBlock`` (V2: GRN, no LayerScale) with the same parameters and
    results: (B, C, H, W) -> (B, C, H, W), the per-position part on a (B, H, W, C) view."""
    y = block.depthwise_conv(x).permute(0, 2, 3, 1)  # (B, H, W, C)
    y = F.layer_norm(y, block.norm.normalized_shape, block.norm.weight, block.norm.bias,
                     block.norm.eps)
    y = block.act(block.pointwise_conv1(y))
    y = grn_channels_last(y, block.grn.gamma, block.grn.beta, block.grn.eps)
    y = block.pointwise_conv2(y).permute(0, 3, 1, 2)
    return x + block.drop_path(y)


@MODELS.register_module()
class ConvNeXtV2(VisionBackbone):
    """ConvNeXt V2 backbone.

    Args:
        arch: ``'atto'``, ``'femto'``, ``'pico'``, ``'nano'``, ``'tiny'``, ``'base'``,
            ``'large'``, ``'huge'`` or a dict with ``depths`` and ``channels`` (4 entries each).
        in_channels: Image channels.
        drop_path_rate: Stochastic depth, linear from 0 over all blocks.
        out_indices: Stages returned (0-3, negative counts from the end).
        frozen_stages: Number of leading stages (with their downsample) frozen, 0-4.
        gap_before_final_norm: ``True`` (classification): each returned stage is averaged over
            H, W, then normalised: (B, C). ``False`` (dense): normalised maps (B, C, h, w).
        layer_decay_type: ``'single'`` (per block: id 1 = stem and the first block, id
            ``sum(depths) + 1`` = the final norms and heads; the official A/F/P/N/T fine-tunes) or
            ``'group'`` (mmpretrain's 12 groups, or 6 for a third stage of at most 9 blocks; the
            official B/L/H fine-tunes).
        with_cp: Activation checkpointing of every block.
        init_cfg: Truncated-normal (std .02) conv/linear weights, zero biases (the official
            init); the FCMAE decoder and heads init themselves.
    """

    arch_zoo = {name: ConvNeXt.arch_settings[name] for name in
                ('atto', 'femto', 'pico', 'nano', 'tiny', 'base', 'large', 'huge')}
    arch_keys = ('depths', 'channels')
    size_divisor = 32

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 drop_path_rate: float = 0.,
                 out_indices: Union[int, Sequence[int]] = -1,
                 frozen_stages: int = 0,
                 gap_before_final_norm: bool = True,
                 layer_decay_type: str = 'single',
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        arch = self.parse_arch(arch)
        depths, channels = list(arch['depths']), list(arch['channels'])
        if len(depths) != 4 or len(channels) != 4:
            raise ValueError(f'ConvNeXtV2: a custom arch needs 4 depths and 4 channels, got '
                             f'{arch!r}.')
        for d in depths:
            self.check_int('depths[i]', d)
        for c in channels:
            self.check_int('channels[i]', c)
        self.check_rate('drop_path_rate', drop_path_rate)
        self.check_int('frozen_stages', frozen_stages, minimum=0)
        if frozen_stages > 4:
            raise ValueError(f'ConvNeXtV2: frozen_stages must be in 0..4, got {frozen_stages}.')
        self.check_choice('layer_decay_type', layer_decay_type, ('single', 'group'))
        indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        if not indices or any(isinstance(i, bool) or not isinstance(i, int) or not -4 <= i < 4
                              for i in indices):
            raise ValueError(f'ConvNeXtV2: out_indices must be stage numbers in -4..3, got '
                             f'{out_indices!r}.')
        indices = sorted(set(i % 4 for i in indices))
        super().__init__(init_cfg=init_cfg or _DEFAULT_INIT)
        self.depths, self.channels = depths, channels
        self.num_stages = 4
        self.out_indices = indices
        self.frozen_stages = frozen_stages
        self.gap_before_final_norm = gap_before_final_norm
        self.with_cp = with_cp  # blocks are checkpointed by run_block, not by the stock block
        self.layer_decay_type = layer_decay_type
        norm_cfg = dict(type='LN2d', eps=1e-6)
        dpr = drop_path_rates(drop_path_rate, sum(depths))  # linear 0 -> rate, as mmpretrain
        self.downsample_layers = ModuleList([nn.Sequential(
            nn.Conv2d(in_channels, channels[0], kernel_size=4, stride=4),
            build_norm_layer(norm_cfg, channels[0]))])
        self.stages = nn.ModuleList()
        first = 0
        for i in range(4):
            if i > 0:
                self.downsample_layers.append(nn.Sequential(
                    build_norm_layer(norm_cfg, channels[i - 1]),
                    nn.Conv2d(channels[i - 1], channels[i], kernel_size=2, stride=2)))
            self.stages.append(Sequential(*[
                ConvNeXtBlock(channels[i], drop_path_rate=dpr[first + j], norm_cfg=norm_cfg,
                              layer_scale_init_value=0., use_grn=True)
                for j in range(depths[i])]))
            first += depths[i]
            if i in indices:
                self.add_module(f'norm{i}', build_norm_layer(norm_cfg, channels[i]))
        if layer_decay_type == 'single':
            self.num_layer_ids = sum(depths) + 2
        else:
            self.num_layer_ids = (12 if depths[2] > 9 else 6) + 2
        self._freeze_stages()

    # ------------------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, 3, H, W), any H and W -> per ``out_indices``: (B, C_i) pooled features or
        (B, C_i, ceil(H / 2^(i+2)), ceil(W / 2^(i+2))) maps."""
        self.check_batch(x, type(self).__name__)
        H0, W0 = x.shape[-2:]
        d = self.size_divisor
        if H0 % d or W0 % d:
            x = F.pad(x, (0, -W0 % d, 0, -H0 % d))
        outs = []
        for i, stage in enumerate(self.stages):
            if i == 0:
                conv, norm = self.downsample_layers[0]
                x = norm_channels(norm, conv(x))
            else:
                norm, conv = self.downsample_layers[i]
                x = conv(norm_channels(norm, x))
            for block in stage:
                x = self.run_block(_block_forward, x, block)
            if i in self.out_indices:
                s = 2 ** (i + 2)
                y = x[..., :-(-H0 // s), :-(-W0 // s)]  # the unpadded part of this stage
                norm = getattr(self, f'norm{i}')
                if self.gap_before_final_norm:
                    outs.append(norm(y.mean((-2, -1), keepdim=True)).flatten(1))
                else:
                    outs.append(norm_channels(norm, y))
        return tuple(outs)

    # ------------------------------------------------------------------------------ freezing
    def frozen_modules(self) -> List[nn.Module]:
        mods = []
        for i in range(self.frozen_stages):
            mods += [self.downsample_layers[i], self.stages[i]]
        return mods

    # ------------------------------------------------------------------------- layer decay
    def layer_id(self, name: str) -> Optional[int]:
        """Layer ids of the official ``optim_factory.py``. ``'single'``: downsample i ->
        ``sum(depths[:i]) + 1``, block (i, j) -> ``sum(depths[:i]) + j + 1``. ``'group'``:
        mmpretrain's ``ConvNeXt.get_layer_depth``. Anything else (final norms) -> the last id."""
        parts = name.split('.')
        if parts[0] not in ('downsample_layers', 'stages'):
            return None
        stage = int(parts[1])
        if self.layer_decay_type == 'single':
            first = sum(self.depths[:stage]) + 1
            return first if parts[0] == 'downsample_layers' else first + int(parts[2])
        top = self.num_layer_ids - 2
        if parts[0] == 'downsample_layers':
            return {0: 0, 1: 2, 2: 3}.get(stage, top)
        block = int(parts[2])
        return {0: 1, 1: 2}.get(stage, 3 + block // 3 if stage == 2 else top)
