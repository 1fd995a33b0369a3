"""Normalisation layers for channel-first feature maps."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...registry import MODELS

__all__ = ['LayerNorm2d']


# mmpretrain already registers an identical 'LN2d'; mmseg and mmdet (outside its ViTDet project) do not
@MODELS.register_module(name='LN2d', toolboxes=('mmseg', 'mmdet'))
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map (registered as ``'LN2d'`` in mmseg and
    mmdet, so ``norm_cfg=dict(type='LN2d')`` works in their heads, as in ViTDet).

    Shapes:
        (B, C, H, W) -> (B, C, H, W)
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f'LayerNorm2d expects (B, C, H, W), got {tuple(x.shape)}')
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
