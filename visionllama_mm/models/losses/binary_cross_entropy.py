"""DeiT III's binary cross-entropy on Mixup/CutMix targets (used by the plain VisionLLaMA recipe).

mmpretrain's ``CrossEntropyLoss(use_sigmoid=True)`` takes the soft mixed targets as they are and
divides the sum over classes by the batch size. DeiT III (``--bce-loss``) instead sets every class
with a non-zero mixed target to 1 (both images of a mixed pair count as present) and averages over
batch x classes, a loss about ``num_classes`` times smaller; with LAMB's clipping of the global
gradient norm at 1.0, the scale decides whether clipping acts.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...registry import MODELS


@MODELS.register_module()
class BinarizedBCELoss(nn.Module):
    """Sigmoid binary cross-entropy against ``target > 0``, averaged over every (sample, class).

    Args:
        loss_weight: Multiplier of the loss.

    Inputs:
        cls_score: (N, C) logits.
        label: (N, C) soft targets (Mixup/CutMix scores), or (N,) / (N, 1) class indices.
        avg_factor: accepted because mmpretrain's heads always pass the batch size; the loss is
            the mean over all N x C terms, as DeiT III's ``BCEWithLogitsLoss``.
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, cls_score: torch.Tensor, label: torch.Tensor,
                weight: Optional[torch.Tensor] = None, avg_factor: Optional[int] = None,
                reduction_override: Optional[str] = None, **kwargs) -> torch.Tensor:
        if weight is not None or reduction_override not in (None, 'mean') or kwargs:
            raise ValueError('BinarizedBCELoss: the loss is always the mean over samples and '
                             'classes; got an unsupported weight, reduction_override or '
                             f'argument ({sorted(kwargs) or reduction_override or "weight"}).')
        if label.dim() == 2 and label.shape[1] == 1:
            label = label[:, 0]
        if label.dim() == 1:
            label = F.one_hot(label.long(), cls_score.shape[-1])
        if label.shape != cls_score.shape:
            raise ValueError(f'BinarizedBCELoss: targets of shape {tuple(label.shape)} for '
                             f'scores of shape {tuple(cls_score.shape)}.')
        target = (label > 0).to(cls_score.dtype)
        return self.loss_weight * F.binary_cross_entropy_with_logits(cls_score, target)
