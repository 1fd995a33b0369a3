"""DeiT III's BCE as the official deit/engine_b.py computes it, inside mmpretrain's head."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from mmpretrain.models import build_head
from mmpretrain.models.utils.batch_augments import CutMix, Mixup
from mmpretrain.structures import DataSample

import visionllama_mm  # noqa: F401


def _official(outputs, mixed_targets):
    # engine_b.py: targets = targets.gt(0.0).type(targets.dtype); BCEWithLogitsLoss()
    targets = mixed_targets.gt(0.0).type(mixed_targets.dtype)
    return torch.nn.BCEWithLogitsLoss()(outputs, targets)


@pytest.mark.parametrize('augment', [Mixup(alpha=0.8), CutMix(alpha=1.0)])
def test_head_loss_equals_the_official_on_mixed_targets(augment):
    torch.manual_seed(0)
    np.random.seed(0)  # mmpretrain's Mixup / CutMix draw lambda from numpy
    num_classes, n = 10, 6
    labels = torch.tensor([0, 3, 3, 7, 9, 1])
    images = torch.rand(n, 3, 8, 8)
    _, mixed = augment(images, F.one_hot(labels, num_classes).float())
    assert ((mixed > 0) & (mixed < 1)).any()  # soft targets: the case the binarisation matters
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        head = build_head(dict(type='LinearClsHead', num_classes=num_classes, in_channels=4,
                               loss=dict(type='BinarizedBCELoss')))
        stock = build_head(dict(type='LinearClsHead', num_classes=num_classes, in_channels=4,
                                loss=dict(type='CrossEntropyLoss', use_sigmoid=True)))
    feats = torch.randn(n, 4)
    samples = [DataSample().set_gt_score(m) for m in mixed]
    loss = head.loss((feats, ), samples)['loss']
    expected = _official(head.fc(feats), mixed)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)
    # mmpretrain's sigmoid cross-entropy on the soft targets: summed over classes / N
    stock.load_state_dict(head.state_dict())
    stock_loss = stock.loss((feats, ), samples)['loss']
    assert stock_loss > 0.5 * num_classes * loss  # about num_classes times larger


def test_hard_labels_and_errors():
    from visionllama_mm.models.losses import BinarizedBCELoss
    loss = BinarizedBCELoss()
    scores = torch.randn(4, 5)
    labels = torch.tensor([0, 1, 2, 4])
    torch.testing.assert_close(
        loss(scores, labels, avg_factor=4),
        F.binary_cross_entropy_with_logits(scores, F.one_hot(labels, 5).float()))
    with pytest.raises(ValueError, match=r'targets of shape \(4, 3\) for scores of shape \(4, 5\)'):
        loss(scores, torch.rand(4, 3))
    with pytest.raises(ValueError, match='always the mean'):
        loss(scores, labels, weight=torch.ones(4))
