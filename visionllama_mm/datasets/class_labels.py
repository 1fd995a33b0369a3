"""Class labels to condition test-time image generation on (FID-50K of DiT / SiT).

The "dataset" of a class-conditional sampling run has no images: item ``i`` asks the generator for
one sample of class ``label[i]``. Two ways to choose the labels:

* ``labels='uniform'`` (default, as DiT's and SiT's ``sample_ddp.py``, whose FID-50K numbers the
  papers report): each label is drawn uniformly at random from the classes, independently. The
  official scripts draw them per batch on each rank, so their set depends on the number of GPUs;
  here the whole array is drawn once, at construction, by a numpy ``Generator`` seeded with
  ``seed``, so sample ``i`` has the same class whatever the number of ranks or workers and after a
  resume. The class counts of 50,000 draws over 1000 classes vary around 50 (standard deviation
  about 7).
* ``labels='balanced'``: ``label[i] = i % num_classes``, exactly 50 samples of every class in
  FID-50K. With the class histogram fixed the metrics vary less from run to run, but this is not
  how the papers sampled, and a number may differ slightly from theirs.
"""
from typing import Optional, Sequence

import numpy as np
import torch
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

from ..registry import DATASETS

__all__ = ['ClassLabelDataset']


@DATASETS.register_module()
class ClassLabelDataset(Dataset):
    """Class labels for class-conditional sampling: uniform random (as DiT / SiT) or balanced.

    Item ``i`` is ``dict(inputs=torch.zeros(3, 1, 1, dtype=torch.uint8), data_samples=DataSample)``
    whose data sample has ``gt_label`` ``[label]`` and metainfo ``sample_idx=i``. The ``(3, 1, 1)``
    placeholder only lets the usual data preprocessors and collate functions pass the batch
    through; the generator reads the labels.

    ``labels='uniform'``: ``label[i]`` is drawn uniformly from the classes (all
    ``range(num_classes)``, or ``classes`` when given), independently for every ``i``, by
    ``numpy.random.default_rng(seed)`` once for the whole dataset. The labels are a function of
    ``(num_samples, num_classes, classes, seed)`` only: the same on any number of ranks and
    workers, and after a resume.

    ``labels='balanced'``: ``label[i]`` is ``i % num_classes``, or ``classes[i % len(classes)]``.
    Every prefix of the dataset holds each class within one of the others, so the whole set is
    balanced to within one and exactly when ``num_samples`` is a multiple of the class count.

    With mmengine's ``DefaultSampler(shuffle=False, round_up=False)`` on ``W`` ranks the shares
    together are the whole set, each index once (rank ``r`` gets the indices ``r, r + W, ...``);
    only the union matters for the metrics, which merge all ranks' samples.

    Args:
        num_samples (int): Number of samples to draw. Defaults to 50000 (FID-50K).
        num_classes (int): Number of classes of the generator. Defaults to 1000 (ImageNet).
        classes (Sequence[int], optional): Class ids to draw from instead of all
            ``range(num_classes)`` (e.g. a few classes for a quick look); each in
            ``[0, num_classes)``, no duplicates.
        labels (str): ``'uniform'`` (random, as the official ``sample_ddp.py`` of DiT and SiT)
            or ``'balanced'`` (cyclic). Defaults to ``'uniform'``.
        seed (int): Seed of the uniform labels (unused by ``'balanced'``). Defaults to 0.
        test_mode (bool): Must be True: the labels have no images to train on. Kept so that
            configs that set ``test_mode`` on every dataset build this one too.
    """

    LABELS = ('uniform', 'balanced')

    def __init__(self,
                 num_samples: int = 50000,
                 num_classes: int = 1000,
                 classes: Optional[Sequence[int]] = None,
                 labels: str = 'uniform',
                 seed: int = 0,
                 test_mode: bool = True):
        if not test_mode:
            raise ValueError('ClassLabelDataset: test_mode=False is not supported; it yields class '
                             'labels for test-time sampling and has no images to train on.')
        if int(num_samples) != num_samples or num_samples < 1:
            raise ValueError(f'ClassLabelDataset: num_samples must be a positive integer, got '
                             f'{num_samples!r}.')
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f'ClassLabelDataset: num_classes must be a positive integer, got '
                             f'{num_classes!r}.')
        if labels not in self.LABELS:
            raise ValueError(f"ClassLabelDataset: labels must be 'uniform' or 'balanced', got "
                             f'{labels!r}.')
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(f'ClassLabelDataset: seed must be a non-negative integer, got '
                             f'{seed!r}.')
        num_samples, num_classes = int(num_samples), int(num_classes)
        if classes is None:
            class_ids = list(range(num_classes))
        else:
            if isinstance(classes, (str, bytes)) or not len(classes):
                raise ValueError(f'ClassLabelDataset: classes must be a non-empty list of class '
                                 f'ids, got {classes!r}.')
            bad = [c for c in classes
                   if isinstance(c, bool) or int(c) != c or not 0 <= int(c) < num_classes]
            if bad:
                raise ValueError(f'ClassLabelDataset: classes {bad} are not integer class ids in '
                                 f'[0, num_classes={num_classes}).')
            class_ids = [int(c) for c in classes]
            dups = sorted({c for c in class_ids if class_ids.count(c) > 1})
            if dups:
                raise ValueError(f'ClassLabelDataset: classes {dups} are listed more than once; '
                                 f'that would unbalance the labels.')
        self.num_samples = num_samples
        self.num_classes = num_classes
        self.class_ids = class_ids
        self.labels = labels
        self.seed = int(seed)
        self.test_mode = True
        if labels == 'uniform':
            draws = np.random.default_rng(self.seed).integers(0, len(class_ids), num_samples)
            self._labels = np.asarray(class_ids, dtype=np.int64)[draws]
        else:
            self._labels = None

    @property
    def metainfo(self) -> dict:
        """``dict(num_classes=...)`` (the generator's class count)."""
        return dict(num_classes=self.num_classes)

    def __len__(self) -> int:
        return self.num_samples

    def get_label(self, idx: int) -> int:
        """The class id of sample ``idx`` (``0 <= idx < num_samples``)."""
        if self._labels is not None:
            return int(self._labels[idx])
        return self.class_ids[idx % len(self.class_ids)]

    def __getitem__(self, idx: int) -> dict:
        if not -self.num_samples <= idx < self.num_samples:
            raise IndexError(f'ClassLabelDataset: index {idx} out of range for '
                             f'{self.num_samples} samples.')
        idx = idx % self.num_samples
        data_sample = DataSample().set_gt_label(self.get_label(idx))
        data_sample.set_metainfo(dict(sample_idx=idx))  # (set_metainfo returns None)
        return dict(inputs=torch.zeros(3, 1, 1, dtype=torch.uint8), data_samples=data_sample)

    def __repr__(self) -> str:
        classes = ('all' if len(self.class_ids) == self.num_classes
                   and self.class_ids == list(range(self.num_classes)) else self.class_ids)
        seed = f', seed={self.seed}' if self.labels == 'uniform' else ''
        return (f'{self.__class__.__name__}(num_samples={self.num_samples}, '
                f'num_classes={self.num_classes}, classes={classes}, labels={self.labels!r}'
                f'{seed})')
