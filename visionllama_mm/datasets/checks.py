"""Dataset checks that name the annotation file (and line) at fault before training starts.

* :func:`check_annotation_file`: an empty annotation file (mmengine otherwise fails with
  ``need at least one array to concatenate`` while serialising the empty sample list).
* :func:`check_labels`: a classification label outside ``0..num_classes-1`` (otherwise an
  assertion or an index error in the loss, mid-epoch, with no file or line).
* :func:`check_data_files`: a listed image (or segmentation map, or video) that does not exist or
  is empty (0 bytes), found by one ``os.stat`` per file before the first iteration (otherwise an
  OpenCV assertion naming no file, at whatever iteration reaches the sample).
* :func:`naming_annotation_errors`: a malformed annotation file that a stock dataset's reader
  fails on (a cut-off ``<path> <label>`` line, truncated COCO JSON) is named with its line.

All of them are run by :class:`visionllama_mm.engine.runner.Runner` (``tools/train.py``,
``tools/test.py``) on every dataset it builds; :class:`~visionllama_mm.datasets.DigitsDataset`
also checks its own annotation file.
"""
import json
import os
import os.path as osp
import stat
from contextlib import contextmanager
from typing import Iterator, List, Optional

import numpy as np

from ..utils.checksums import weights_checksum  # noqa: F401 (also imported from here)

__all__ = [
    'check_annotation_file', 'check_dataset_cfg', 'check_data_files', 'check_labels',
    'naming_annotation_errors', 'weights_checksum'
]

#: Keys of a sample's data info holding files the pipeline reads (mmpretrain / mmdet / mmseg
#: images, mmseg segmentation maps, visual sentences' image lists and videos).
DATA_FILE_KEYS = ('img_path', 'seg_map_path', 'img_paths', 'video')


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


def _annotation_file(dataset_cfg):
    """(dataset, its resolved annotation file) of a dataset config, or ``None`` for what is not
    an mmengine ``BaseDataset`` with a local annotation file.

    The dataset is built once with ``lazy_init=True`` (no annotation is read) so that the path is
    the one the dataset itself resolves (``data_root``, ``split`` of ``ImageNet`` ...)."""
    from mmengine.dataset import BaseDataset
    from mmengine.registry import DATASETS
    cls = dataset_cfg.get('type')
    if isinstance(cls, str):  # resolved in the default scope, as DATASETS.build does
        with DATASETS.switch_scope_and_registry(dataset_cfg.get('_scope_')) as registry:
            cls = registry.get(cls)
    if not (isinstance(cls, type) and issubclass(cls, BaseDataset)):
        return None
    dataset = DATASETS.build({**dataset_cfg, 'lazy_init': True})
    ann_file = getattr(dataset, 'ann_file', '')
    return (dataset, ann_file) if isinstance(ann_file, str) and ann_file else None


def check_dataset_cfg(dataset_cfg) -> None:
    """:func:`check_annotation_file` on the annotation file of a dataset config.

    Only mmengine ``BaseDataset`` subclasses are checked; wrappers and other datasets are left
    alone."""
    found = _annotation_file(dataset_cfg)
    if found is not None:
        check_annotation_file(found[1], dataset=type(found[0]).__name__)


def _first_bad_line(dataset, ann_file: str) -> Optional[str]:
    """Where an annotation file that the stock reader failed on is malformed, or ``None``."""
    try:
        with open(ann_file, 'rb') as f:
            raw = f.read()
        text = raw.decode('utf-8')
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b'\n') + 1
        return f'{ann_file}:{line}: not UTF-8 text ({err.reason} at byte {err.start})'
    except OSError:
        return None
    if ann_file.lower().endswith('.json'):
        try:
            json.loads(text)
        except json.JSONDecodeError as err:
            return (f'{ann_file}:{err.lineno}:{err.colno}: not valid JSON ({err.msg}; the file '
                    f'has {len(raw)} bytes: truncated?)')
        return None
    if getattr(dataset, 'with_label', False):  # mmpretrain's "<image path> <label>" lines
        for number, line in enumerate(text.splitlines(), 1):
            parts = line.strip().rsplit(' ', 1)
            if len(parts) != 2 or not parts[0] or not parts[1].lstrip('-').isdigit():
                return (f'{ann_file}:{number}: "{line}" is not "<image path> <integer label>" '
                        '(a blank or cut-off line?)')
    return None


@contextmanager
def naming_annotation_errors(dataset_cfg) -> Iterator[None]:
    """Re-raise an error of a stock dataset's annotation reader (``not enough values to
    unpack``, ``invalid literal for int()``, a ``JSONDecodeError`` from pycocotools ...) as one
    naming the annotation file and line. The file is only looked at after such a failure."""
    try:
        yield
    except (ValueError, TypeError) as err:  # JSONDecodeError, UnicodeDecodeError included
        found = None
        if isinstance(dataset_cfg, dict):
            try:
                found = _annotation_file(dataset_cfg)
            except Exception:  # the config itself is at fault: the original error says how
                found = None
        if found is None or found[1] in str(err):
            raise
        where = _first_bad_line(*found)
        if where is None:
            raise
        raise ValueError(f'{type(found[0]).__name__}: annotation file {where}. (The reader '
                         f'failed with {type(err).__name__}: {err})') from err


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


def check_labels(dataset, num_classes: int, where: str = 'dataset',
                 model_key: str = 'num_classes in the model (head and data_preprocessor)') -> None:
    """Raise ``ValueError`` if a single-label dataset holds a label outside ``0..num_classes-1``.

    ``model_key`` says where the model's class count is set (named in the message).

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
            f'Fix the annotation file, or {model_key}.')


def _listed_files(info: dict) -> List[str]:
    files = []
    for key in DATA_FILE_KEYS:
        value = info.get(key)
        for path in ([value] if isinstance(value, str) else
                     value if isinstance(value, (list, tuple)) else ()):
            # remote paths (s3://, http://) are the storage backend's to check
            if isinstance(path, str) and path and '://' not in path and path not in files:
                files.append(path)
    return files


def _file_problem(path: str) -> str:
    """'' for a non-empty file, else what is wrong with it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return 'does not exist'
    except OSError as err:
        return f'cannot be read ({err.strerror})'
    if stat.S_ISDIR(st.st_mode):
        return 'is a directory'
    return 'is empty (0 bytes)' if st.st_size == 0 else ''


def check_data_files(dataset, where: str = '', max_listed: int = 5, threads: int = 16) -> None:
    """Raise if a file that a sample lists does not exist, is empty (0 bytes) or a directory.

    Every fully initialised mmengine ``BaseDataset`` in ``dataset`` (wrapped ones included) is
    checked with one ``os.stat`` per file of :data:`DATA_FILE_KEYS` (in ``threads`` threads:
    on a network file system the calls wait on the server, not on Python); other datasets
    (streamed shards, token files) check their files when they are built. The error names the
    dataset, its annotation file, how many files are bad and the first ``max_listed`` of them
    with their sample index. ``FileNotFoundError`` if any is missing, else ``ValueError``.

    Cost: one ``stat`` per file plus reading each sample's info (about half each on a local
    disk); a cold network file system adds its ``stat`` latency, spread over the threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    from mmengine.dataset import BaseDataset
    for ds in _datasets(dataset):
        if not isinstance(ds, BaseDataset) or not getattr(ds, '_fully_initialized', False):
            continue
        listed = [(idx, path) for idx in range(len(ds))
                  for path in _listed_files(ds.get_data_info(idx))]
        paths = [path for _, path in listed]
        step = max(1, -(-len(paths) // (threads * 4)))
        with ThreadPoolExecutor(max(1, threads)) as pool:
            chunks = pool.map(lambda i: [_file_problem(p) for p in paths[i:i + step]],
                              range(0, len(paths), step))
            found = [p for chunk in chunks for p in chunk]
        bad = [f'sample {idx}: {path} {problem}'
               for (idx, path), problem in zip(listed, found) if problem]
        if not bad:
            continue
        ann_file = getattr(ds, 'ann_file', '')
        source = f' listed by {ann_file}' if isinstance(ann_file, str) and ann_file else ''
        more = f'; ... {len(bad) - max_listed} more' if len(bad) > max_listed else ''
        error = FileNotFoundError if 'does not exist' in found else ValueError
        raise error(f'{where + ": " if where else ""}{type(ds).__name__}: {len(bad)} of the '
                    f'{len(paths)} files{source} are missing, empty or unreadable: '
                    f'{"; ".join(bad[:max_listed])}{more}. Restore them or remove their samples '
                    'from the annotation file.')
