"""ClassLabelDataset: labels of class-conditional sampling, their balance over ranks, errors."""
import math
from collections import Counter

import pytest
import torch
from mmengine.dataset import DefaultSampler

from visionllama_mm.datasets.class_labels import ClassLabelDataset
from mmpretrain.registry import DATASETS

import visionllama_mm  # noqa: F401  (registers ClassLabelDataset)


def _rank_indices(dataset, rank, world_size, monkeypatch):
    """The indices mmengine's DefaultSampler(shuffle=False, round_up=False) gives ``rank``."""
    monkeypatch.setattr('mmengine.dataset.sampler.get_dist_info', lambda: (rank, world_size))
    return list(DefaultSampler(dataset, shuffle=False, seed=0, round_up=False))


def test_items_and_labels():
    ds = DATASETS.build(dict(type='ClassLabelDataset', num_samples=23, num_classes=10))
    assert len(ds) == 23 and ds.metainfo == dict(num_classes=10)
    for i in (0, 7, 9, 10, 22):
        item = ds[i]
        assert set(item) == {'inputs', 'data_samples'}
        x = item['inputs']
        assert x.dtype == torch.uint8 and x.shape == (3, 1, 1) and not x.any()
        assert item['data_samples'].gt_label.tolist() == [i % 10]
        assert item['data_samples'].sample_idx == i
    assert ds[-1]['data_samples'].sample_idx == 22      # like a list
    with pytest.raises(IndexError, match='index 23 out of range for 23'):
        ds[23]


def test_class_subset():
    ds = ClassLabelDataset(num_samples=7, num_classes=1000, classes=[207, 360, 387])
    assert [ds[i]['data_samples'].gt_label.item() for i in range(7)] == [207, 360, 387] * 2 + [207]
    assert ds.metainfo == dict(num_classes=1000)


@pytest.mark.parametrize('num_samples,num_classes', [(50000, 1000), (1003, 10), (37, 7)])
def test_balance_over_ranks(num_samples, num_classes, monkeypatch):
    ds = ClassLabelDataset(num_samples=num_samples, num_classes=num_classes)
    labels = [ds.get_label(i) for i in range(num_samples)]
    n = min(50, num_samples)
    assert labels[:n] == [ds[i]['data_samples'].gt_label.item() for i in range(n)]
    # every prefix is balanced within one (spot check lengths incl. the whole set)
    for n in {1, num_classes - 1, num_classes + 3, num_samples // 2 + 1, num_samples}:
        counts = Counter(labels[:n])
        per_class = [counts.get(c, 0) for c in range(num_classes)]
        assert max(per_class) - min(per_class) <= 1
    for world_size in range(1, 9):
        shares = [_rank_indices(ds, r, world_size, monkeypatch) for r in range(world_size)]
        # the shares are the whole set, each index exactly once (round_up=False pads nothing)
        assert sorted(i for s in shares for i in s) == list(range(num_samples))
        assert [len(s) for s in shares] == [math.ceil((num_samples - r) / world_size)
                                           for r in range(world_size)]
        g = math.gcd(world_size, num_classes)
        for r, share in enumerate(shares):
            counts = Counter(labels[i] for i in share)
            # rank r draws the classes c = r (mod gcd), each within one of the others
            drawn = [c for c in range(num_classes) if c % g == r % g]
            assert set(counts) <= set(drawn)
            per_class = [counts.get(c, 0) for c in drawn]
            assert max(per_class) - min(per_class) <= 1, (world_size, r)
            if g == 1:
                assert len(share) < num_classes or set(counts) == set(range(num_classes))


def test_whole_set_exactly_balanced():
    ds = ClassLabelDataset(num_samples=50000, num_classes=1000)
    assert set(Counter(ds.get_label(i) for i in range(50000)).values()) == {50}


@pytest.mark.parametrize('kwargs,match', [
    (dict(test_mode=False), 'test_mode=False is not supported'),
    (dict(num_samples=0), 'num_samples must be a positive integer, got 0'),
    (dict(num_samples=2.5), 'num_samples must be a positive integer'),
    (dict(num_classes=0), 'num_classes must be a positive integer'),
    (dict(num_classes=10, classes=[]), 'non-empty list of class ids'),
    (dict(num_classes=10, classes=[3, 10, -1]), r'classes \[10, -1\] are not integer class ids '
                                                r'in \[0, num_classes=10\)'),
    (dict(num_classes=10, classes=[1.5]), r'classes \[1.5\] are not integer'),
    (dict(num_classes=10, classes=[1, 2, 1]), r'classes \[1\] are listed more than once'),
])
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassLabelDataset(**kwargs)
