"""Normalisation layers: mmpretrain's own, made available to mmseg and mmdet.

``LayerNorm2d`` (LN over the channels of a (B, C, H, W) map) and ``GRN`` (ConvNeXt V2's global
response normalisation) are mmpretrain's classes, reused as they are. mmpretrain registers
``LayerNorm2d`` as ``'LN2d'``; mmseg and mmdet (outside mmdet's ViTDet project) do not, so it is
registered there too and ``norm_cfg=dict(type='LN2d')`` works in their heads, as in ViTDet.
RMSNorm is torch's own ``nn.RMSNorm``.
"""
from mmpretrain.models.utils import GRN, LayerNorm2d
from torch.nn import RMSNorm

from ...registry import MODELS

__all__ = ['LayerNorm2d', 'GRN', 'RMSNorm']

MODELS.register_module(name='LN2d', module=LayerNorm2d, toolboxes=('mmseg', 'mmdet'))
