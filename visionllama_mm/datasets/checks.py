"""Dataset checks that name the annotation file (and line) at fault before training starts.

* :func:`check_annotation_file`: an empty annotation file (mmengine otherwise fails with
  ``need at least one array to concatenate`` while serialising the empty sample list).
* :func:`check_labels`: a classification label outside ``0..num_classes-1`` (otherwise an
  assertion or an index error in the loss, mid-epoch, with no file or line).

Both are run by :class:`visionllama_mm.engine.runner.Runner` (``tools/train.py``,
``tools/test.py``) on every dataset it builds; :class:`~visionllama_mm.datasets.DigitsDataset`
also checks its own annotation file.
"""
import hashlib
import os.path as osp
from typing import Iterator, Optional

import numpy as np

__all__ = ['check_annotation_file', 'check_dataset_cfg', 'check_labels', 'weights_checksum']


def check_annotation_file(path: str, dataset: str = 'dataset') -> None:
    """Raise ``ValueError`` if the local annotation file ``path`` has no samples (empty or only
    blank lines)."""
    if not osp.isfile(path):
        return
    with open(path, 'rb') as f:
        empty = not f.read(1 << 16).strip() and f.read(1) == b''
    if empty:
        raise ValueError(
            f'{dataset}: annotation file {path} is empty, so the dataset has no samples. '
            'Expected one sample per line (for ImageNet-format datasets: '
            '"<image path relative to data_prefix> <label>").')


def check_dataset_cfg(dataset_cfg) -> None:
    """:func:`check_annotation_file` on the annotation file of a dataset config.

    The dataset is built once with ``lazy_init=True`` (no annotation is read) so that the path is
    the one the dataset itself resolves (``data_root``, ``split`` of ``ImageNet`` ...). Only
    mmengine ``BaseDataset`` subclasses are checked; wrappers and other datasets are left alone.
    """
    from mmengine.dataset import BaseDataset
    from mmengine.registry import DATASETS
    cls = dataset_cfg.get('type')
    if isinstance(cls, str):  # resolved in the default scope, as DATASETS.build does
        with DATASETS.switch_scope_and_registry(dataset_cfg.get('_scope_')) as registry:
            cls = registry.get(cls)
    if not (isinstance(cls, type) and issubclass(cls, BaseDataset)):
        return
    dataset = DATASETS.build({**dataset_cfg, 'lazy_init': True})
    ann_file = getattr(dataset, 'ann_file', '')
    if isinstance(ann_file, str) and ann_file:
        check_annotation_file(ann_file, dataset=cls.__name__)


def _datasets(dataset) -> Iterator:
    """A built dataset and the ones it wraps (``dataset`` / ``datasets`` attributes)."""
    yield dataset
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset:
        yield from _datasets(inner)
    for item in getattr(dataset, 'datasets', None) or ():
        yield from _datasets(item)


def _find_line(ann_file: str, label: int, img_path: str) -> Optional[tuple]:
    """(line number, text) of the line of a "path label" file that gave ``img_path`` ``label``."""
    with open(ann_file) as f:
        for number, line in enumerate(f, 1):
            parts = line.strip().rsplit(' ', 1)
            if (len(parts) == 2 and parts[1] == str(label) and parts[0]
                    and img_path.replace(osp.sep, '/').endswith(parts[0].replace(osp.sep, '/'))):
                return number, line.strip()
    return None


def check_labels(dataset, num_classes: int, where: str = 'dataset') -> None:
    """Raise ``ValueError`` if a single-label dataset holds a label outside ``0..num_classes-1``.

    Applies to mmpretrain datasets (those with ``get_gt_labels``), wrapped ones included; the
    message names the annotation file and line (``CustomDataset``/``ImageNet`` text files) or the
    sample.
    """
    for ds in _datasets(dataset):
        if not hasattr(ds, 'get_gt_labels') or not hasattr(ds, 'get_data_info'):
            continue
        try:
            labels = np.asarray(ds.get_gt_labels())
        except (KeyError, TypeError, ValueError):  # no labels (test_mode without gt) or multi-label
            continue
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            continue
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if bad.size == 0:
            continue
        idx = int(bad[0])
        label = int(labels[idx])
        info = ds.get_data_info(idx)
        sample = f'sample {idx} ({info.get("img_path", "?")})'
        ann_file = getattr(ds, 'ann_file', '')
        at = ''
        if isinstance(ann_file, str) and osp.isfile(ann_file):
            found = _find_line(ann_file, label, str(info.get('img_path', '')))
            at = (f': {ann_file}:{found[0]}: "{found[1]}"' if found else
                  f': annotation file {ann_file}')
        raise ValueError(
            f'{where}: label {label} is out of range for the model, which has '
            f'num_classes={num_classes} (labels 0..{num_classes - 1}){at}, {sample}; '
            f'{bad.size} of {labels.size} samples have such labels (largest {int(labels.max())}). '
            'Fix the annotation file, or num_classes in the model (head and data_preprocessor).')


def weights_checksum(module) -> str:
    """sha256 over a module's state dict (names, shapes, dtypes, values), first 16 hex digits:
    the fingerprint data files record of the frozen model that wrote them (a tokenizer, a VAE)."""
    import torch
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f'{name}:{tuple(tensor.shape)}:{tensor.dtype};'.encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
