"""Normalisation layers: mmpretrain's own, made available to mmseg and mmdet.

``LayerNorm2d`` (LN over the channels of a (B, C, H, W) map) and ``GRN`` (ConvNeXt V2's global
response normalisation) are mmpretrain's classes, reused as they are. mmpretrain registers
``LayerNorm2d`` as ``'LN2d'``; mmseg and mmdet (outside mmdet's ViTDet project) do not, so it is
registered there too and ``norm_cfg=dict(type='LN2d')`` works in their heads, as in ViTDet.
RMSNorm is torch's own ``nn.RMSNorm``. :func:`grn_channels_last` is GRN's formula as a function of
its parameters, for inputs laid out other than ``GRN.forward`` takes (channels-last maps, FCMAE's
visible rows), with its L2 norms in float32 whatever the activations' dtype.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.utils import GRN, LayerNorm2d
from torch.nn import RMSNorm

from ...registry import MODELS

__all__ = ['LayerNorm2d', 'GRN', 'RMSNorm', 'grn_channels_last', 'norm_channels']

MODELS.register_module(name='LN2d', module=LayerNorm2d, toolboxes=('mmseg', 'mmdet'))


def grn_channels_last(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                      eps: float = 1e-6, dims=(1, 2)) -> torch.Tensor:
    """GRN of (..., C) features: ``gamma * (x * N(x)) + beta + x`` with
    ``N(x) = G(x) / (mean_C G(x) + eps)`` and ``G(x)`` the L2 norm of each channel over ``dims``.
    ``dims=(1, 2)`` is ``GRN(data_format='channel_last')`` on (B, H, W, C).

    ``G`` and its channel mean are computed in float32 for any ``x`` (under fp16 autocast the
    squares of a large map overflow: activations of 300 over a 128x128 map have a norm of 38400,
    whose square is far beyond fp16's 65504, and at 256x256 the norm itself overflows); ``N(x)``,
    of order 1, is then cast to ``x``'s dtype. Returns ``x``'s shape."""
    gx = torch.linalg.vector_norm(x, dim=dims, keepdim=True, dtype=torch.float32)
    nx = (gx / (gx.mean(dim=-1, keepdim=True) + eps)).to(x.dtype)
    return gamma * (x * nx) + beta + x


def norm_channels(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm ``norm`` over the channels of a (B, C, H, W) map, kept in its memory format
    (mmpretrain's ``LayerNorm2d`` and timm's ``LayerNorm2d`` make a contiguous NCHW copy, which
    undoes channels-last). Used by ConvNeXt V2 and ViTamin with plain ``nn.LayerNorm`` modules."""
    return F.layer_norm(x.permute(0, 2, 3, 1), norm.normalized_shape, norm.weight, norm.bias,
                        norm.eps).permute(0, 3, 1, 2)
