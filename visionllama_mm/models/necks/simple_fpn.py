"""Simple feature pyramid of ViTDet (Li et al. 2022) for plain backbones."""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ...engine.pretrained import PretrainedInitMixin
from ...registry import MODELS
from ..layers import LayerNorm2d

__all__ = ['SimpleFPN']


@MODELS.register_module()
class SimpleFPN(PretrainedInitMixin, BaseModule):
    """Build strides 4/8/16/32 (and a max-pooled 64) from the single stride-16 map of a plain ViT.

    4x: deconv 2x2 -> LN2d -> GELU -> deconv 2x2; 2x: deconv 2x2; 1x: identity; 0.5x: max-pool.
    Each level then gets a 1x1 conv + LN2d and a 3x3 conv + LN2d to ``out_channels``.

    Args:
        backbone_channel: Channels of the backbone map.
        in_channels: Channels of the four rescaled maps (e.g. C/4, C/2, C, C).
        out_channels: Channels of every output level.
        num_outs: Number of outputs (5 adds a stride-2 max-pool of the last level).

    Shapes:
        ``(x,)`` with x (B, backbone_channel, H, W) -> tuple of (B, out_channels, 4H / 2^i, ...).
    """

    def __init__(self, backbone_channel: int, in_channels: Sequence[int], out_channels: int,
                 num_outs: int = 5, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        C = backbone_channel
        if len(in_channels) != 4:
            raise ValueError(f'SimpleFPN: in_channels needs 4 entries, got {list(in_channels)}')
        self.num_outs = num_outs
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(C, C // 2, 2, 2), LayerNorm2d(C // 2), nn.GELU(),
            nn.ConvTranspose2d(C // 2, C // 4, 2, 2))
        self.fpn2 = nn.Sequential(nn.ConvTranspose2d(C, C // 2, 2, 2))
        self.fpn3 = nn.Identity()
        self.fpn4 = nn.MaxPool2d(2, 2)
        self.lateral_convs = nn.ModuleList([
            nn.Sequential(nn.Conv2d(c, out_channels, 1, bias=False), LayerNorm2d(out_channels))
            for c in in_channels])
        self.fpn_convs = nn.ModuleList([
            nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                          LayerNorm2d(out_channels)) for _ in in_channels])

    def forward(self, inputs: Tuple[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        x = inputs[-1] if isinstance(inputs, (list, tuple)) else inputs
        feats: List[torch.Tensor] = [self.fpn1(x), self.fpn2(x), self.fpn3(x), self.fpn4(x)]
        outs = [fpn(lat(f)) for f, lat, fpn in zip(feats, self.lateral_convs, self.fpn_convs)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
