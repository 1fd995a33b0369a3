"""ClassLabelDataset: uniform random labels (the default, as DiT's / SiT's sample_ddp.py) and
balanced ones, the same whatever the number of ranks, their shares over ranks, errors."""
import math
from collections import Counter

import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler
from mmpretrain.registry import DATASETS

import visionllama_mm  # noqa: F401  (registers ClassLabelDataset)
from visionllama_mm.datasets.class_labels import ClassLabelDataset


def _rank_indices(dataset, rank, world_size, monkeypatch):
    """The indices mmengine's DefaultSampler(shuffle=False, round_up=False) gives ``rank``."""
    monkeypatch.setattr('mmengine.dataset.sampler.get_dist_info', lambda: (rank, world_size))
    return list(DefaultSampler(dataset, shuffle=False, seed=0, round_up=False))


def test_items_and_labels():
    ds = DATASETS.build(dict(type='ClassLabelDataset', num_samples=23, num_classes=10,
                             labels='balanced'))
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
    ds = ClassLabelDataset(num_samples=7, num_classes=1000, classes=[207, 360, 387],
                           labels='balanced')
    assert [ds[i]['data_samples'].gt_label.item() for i in range(7)] == [207, 360, 387] * 2 + [207]
    assert ds.metainfo == dict(num_classes=1000)
    ds = ClassLabelDataset(num_samples=300, num_classes=1000, classes=[207, 360, 387])
    assert Counter(ds.get_label(i) for i in range(300)).keys() == {207, 360, 387}


def test_uniform_is_the_default_and_a_function_of_the_seed_only():
    ds = DATASETS.build(dict(type='ClassLabelDataset', num_samples=1000, num_classes=10))
    assert ds.labels == 'uniform' and ds.seed == 0
    labels = [ds.get_label(i) for i in range(1000)]
    assert labels == [ds[i]['data_samples'].gt_label.item() for i in range(1000)]
    assert all(ds[i]['data_samples'].sample_idx == i for i in (0, 999))
    assert labels != [i % 10 for i in range(1000)] and set(labels) == set(range(10))
    # rebuilt (another rank, a worker, a resumed run): the same labels; another seed: others
    assert [ClassLabelDataset(1000, 10).get_label(i) for i in range(1000)] == labels
    other = [ClassLabelDataset(1000, 10, seed=1).get_label(i) for i in range(1000)]
    assert other != labels
    # a longer run draws the same first labels (one array, drawn in index order)
    assert [ClassLabelDataset(5000, 10).get_label(i) for i in range(1000)] == labels
    assert "labels='uniform', seed=0" in repr(ds)
    assert "labels='balanced'" in repr(ClassLabelDataset(10, 10, labels='balanced'))


@pytest.mark.parametrize('labels', ['uniform', 'balanced'])
def test_ranks_share_the_same_labels(labels, monkeypatch):
    """The (index, label) pairs drawn on 1 to 8 ranks are the same set: every index once."""
    ds = ClassLabelDataset(num_samples=1003, num_classes=10, labels=labels)
    whole = {(i, ds.get_label(i)) for i in range(1003)}
    for world_size in range(1, 9):
        pairs = []
        for r in range(world_size):
            rank_ds = ClassLabelDataset(num_samples=1003, num_classes=10, labels=labels)
            pairs += [(i, rank_ds[i]['data_samples'].gt_label.item())
                      for i in _rank_indices(rank_ds, r, world_size, monkeypatch)]
        assert len(pairs) == 1003 and set(pairs) == whole, world_size


def test_uniform_histogram_of_fid_50k():
    """50,000 labels over 1000 classes: counts Binomial(50000, 1/1000), mean 50, sd ~7.07. The
    chi-square statistic (999 degrees of freedom: mean 999, sd ~44.7) is within 4.5 sd and no
    class is further than 5 sd from 50, for several seeds (seed 0 is what the configs use)."""
    for seed in (0, 1, 2):
        ds = ClassLabelDataset(num_samples=50000, num_classes=1000, seed=seed)
        counts = np.bincount(ds._labels, minlength=1000)
        assert counts.sum() == 50000 and len(counts) == 1000
        chi2 = ((counts - 50.) ** 2 / 50.).sum()
        assert abs(chi2 - 999) < 4.5 * math.sqrt(2 * 999), (seed, chi2)
        assert np.abs(counts - 50).max() < 5 * math.sqrt(50 * 0.999), (
            seed, counts.min(), counts.max())
        assert 3 < counts.std() < 10  # not balanced


@pytest.mark.parametrize('num_samples,num_classes', [(50000, 1000), (1003, 10), (37, 7)])
def test_balance_over_ranks(num_samples, num_classes, monkeypatch):
    ds = ClassLabelDataset(num_samples=num_samples, num_classes=num_classes, labels='balanced')
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
        assert [len(s) for s in shares] == [
            math.ceil((num_samples - r) / world_size) for r in range(world_size)]
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
    ds = ClassLabelDataset(num_samples=50000, num_classes=1000, labels='balanced')
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
    (dict(labels='random'), "labels must be 'uniform' or 'balanced', got 'random'"),
    (dict(seed=-1), 'seed must be a non-negative integer, got -1'),
    (dict(seed=0.5), 'seed must be a non-negative integer'),
])
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassLabelDataset(**kwargs)
