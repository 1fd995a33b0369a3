"""Visual sentences: the offline builders, pure functions from lists of paths to annotation lines,
seeded, following the official tokenize scripts (``tokenize_examples/*.py``), and
:func:`write_sentences`."""
import json
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Mapping, Sequence

import numpy as np

from ...utils.files import atomic_write
from .transforms import count_video_frames

__all__ = [
    'list_images', 'list_videos', 'list_classes', 'single_image_sentences',
    'frame_sequence_sentences', 'video_sentences', 'paired_sentences', 'colorization_sentences',
    'inpainting_sentences', 'category_sentences', 'multi_annotation_sentences', 'write_sentences'
]

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp')
VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm')


def _natural_key(path: str):
    return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', path)]


def _list_files(folder: str, data_root: str, exts: Sequence[str]) -> List[str]:
    full = osp.join(data_root, folder)
    if not osp.isdir(full):
        raise FileNotFoundError(f'{full} is not a directory.')
    names = [n for n in os.listdir(full)
             if not n.startswith('.') and osp.splitext(n)[1].lower() in exts]
    return [osp.join(folder, n) for n in sorted(names, key=_natural_key)]


def list_images(folder: str, data_root: str = '') -> List[str]:
    """Image files of ``data_root/folder`` (not recursive), as paths relative to ``data_root``,
    in natural name order (``2.png`` before ``10.png``)."""
    return _list_files(folder, data_root, IMAGE_EXTS)


def list_videos(folder: str, data_root: str = '') -> List[str]:
    """Video files of ``data_root/folder``, relative to ``data_root``, in natural name order."""
    return _list_files(folder, data_root, VIDEO_EXTS)


def list_classes(folder: str, data_root: str = '') -> Dict[str, List[str]]:
    """``{class folder name: its images}`` for the sub-folders of ``data_root/folder``."""
    full = osp.join(data_root, folder)
    if not osp.isdir(full):
        raise FileNotFoundError(f'{full} is not a directory.')
    return OrderedDict((name, list_images(osp.join(folder, name), data_root))
                       for name in sorted(os.listdir(full), key=_natural_key)
                       if osp.isdir(osp.join(full, name)) and not name.startswith('.'))


def _groups(n: int, group: int, n_epochs: int, rng: np.random.Generator,
            where: str) -> Iterable[np.ndarray]:
    """For every epoch, a new permutation of ``range(n - n % group)`` cut into rows of
    ``group`` indices (the last ``n % group`` items are dropped, as the official loaders'
    ``drop_last``)."""
    if group < 1 or n_epochs < 1:
        raise ValueError(f'{where}: need n_shots >= 1 and n_epochs >= 1, got {group}, '
                         f'{n_epochs}.')
    total = n - n % group
    if total == 0:
        raise ValueError(f'{where}: {n} items are fewer than one sentence of {group}.')
    for _ in range(n_epochs):
        yield from rng.permutation(total).reshape(-1, group)


def single_image_sentences(images: Sequence[str]) -> List[dict]:
    """``{"images": [image], "type": "single"}`` per image."""
    return [dict(images=[p], type='single') for p in images]


def _subsample(length: int, n_frames: int, max_stride: int, rng: np.random.Generator):
    """(stride, indices): stride uniform in ``[1, min(max_stride, (length-1)//(n_frames-1))]``,
    start uniform over the positions where the ``n_frames`` frames fit."""
    stride = int(rng.integers(1, min(max_stride, (length - 1) // (n_frames - 1)) + 1))
    start = int(rng.integers(0, length - (n_frames - 1) * stride))
    return stride, [start + i * stride for i in range(n_frames)]


def _long_enough(lengths: Sequence[int], n_frames: int, where: str) -> List[int]:
    """Indices of the sequences with at least ``n_frames`` frames (the stand-ins drawn for the
    too-short ones, as the official scripts do); an error if there is none."""
    ok = [i for i, n in enumerate(lengths) if n >= n_frames]
    if not ok:
        raise ValueError(f'{where}: no sequence has n_frames={n_frames} frames (longest: '
                         f'{max(lengths, default=0)}).')
    return ok


def frame_sequence_sentences(sequences: Sequence[Sequence[str]], n_frames: int = 16,
                             max_stride: int = 4, n_epochs: int = 1,
                             seed: int = 0) -> List[dict]:
    """Frame folders -> ``{"images": [f1 .. fn], "type": "sequence", "stride": s}``.

    Per epoch one sentence per sequence (frames in order, e.g. :func:`list_images` of a folder):
    a stride uniform in ``[1, max_stride]`` capped by the length, a random start. A sequence
    with fewer than ``n_frames`` frames is replaced by a random long-enough one."""
    if n_frames < 2 or max_stride < 1 or n_epochs < 1:
        raise ValueError(f'frame_sequence_sentences: need n_frames >= 2, max_stride >= 1 and '
                         f'n_epochs >= 1, got {n_frames}, {max_stride}, {n_epochs}.')
    rng = np.random.default_rng(seed)
    ok = _long_enough([len(s) for s in sequences], n_frames, 'frame_sequence_sentences')
    lines = []
    for _ in range(n_epochs):
        for i, frames in enumerate(sequences):
            if len(frames) < n_frames:
                frames = sequences[ok[rng.integers(len(ok))]]
            stride, idx = _subsample(len(frames), n_frames, max_stride, rng)
            lines.append(dict(images=[frames[j] for j in idx], type='sequence', stride=stride))
    return lines


def video_sentences(videos: Sequence[str], data_root: str = '', n_frames: int = 16,
                    strides: Sequence[int] = (8, ), n_epochs: int = 1,
                    seed: int = 0) -> List[dict]:
    """Video files -> ``{"video": path, "frames": [indices], "type": "video", "stride": s}``.

    For every epoch and stride, one sentence per video: the stride capped at
    ``(T - 1) // (n_frames - 1)`` for a ``T``-frame video, a random start. A video with fewer
    than ``n_frames`` frames is replaced by a random long-enough one (official
    ``tokenize_video_muse.py``). Frame counts come from the container (cv2)."""
    if n_frames < 2 or not strides or min(strides) < 1 or n_epochs < 1:
        raise ValueError(f'video_sentences: need n_frames >= 2, strides >= 1 and n_epochs >= 1, '
                         f'got {n_frames}, {strides}, {n_epochs}.')
    rng = np.random.default_rng(seed)
    lengths = [count_video_frames(osp.join(data_root, v)) for v in videos]
    ok = _long_enough(lengths, n_frames, 'video_sentences')
    lines = []
    for _ in range(n_epochs):
        for stride in strides:
            for i in range(len(videos)):
                if lengths[i] < n_frames:
                    i = ok[rng.integers(len(ok))]
                step = min(stride, (lengths[i] - 1) // (n_frames - 1))
                start = int(rng.integers(0, lengths[i] - (n_frames - 1) * step))
                lines.append(dict(video=videos[i], frames=[start + k * step
                                                           for k in range(n_frames)],
                                  type='video', stride=step))
    return lines


def paired_sentences(inputs: Sequence[str], targets: Sequence[str], n_shots: int = 8,
                     n_epochs: int = 5, seed: int = 0, sentence_type: str = 'pair') -> List[dict]:
    """(x, y) examples -> ``{"images": [x1, y1, .., xn, yn], "type": "pair"}``.

    Both lists are sorted by name and paired by index (official
    ``tokenize_paired_dataset_muse.py``); every epoch re-permutes all pairs into new sentences of
    ``n_shots`` pairs."""
    if len(inputs) != len(targets):
        raise ValueError(f'paired_sentences: {len(inputs)} inputs but {len(targets)} targets; '
                         'pairs are matched by index after sorting by name.')
    xs, ys = sorted(inputs, key=_natural_key), sorted(targets, key=_natural_key)
    rng = np.random.default_rng(seed)
    return [dict(images=[p for i in row for p in (xs[i], ys[i])], type=sentence_type)
            for row in _groups(len(xs), n_shots, n_epochs, rng, 'paired_sentences')]


def _source_sentences(images: Sequence[str], n_shots: int, n_epochs: int, seed: int,
                      sentence_type: str) -> List[dict]:
    rng = np.random.default_rng(seed)
    return [dict(images=[images[i] for i in row], type=sentence_type)
            for row in _groups(len(images), n_shots, n_epochs, rng, f'{sentence_type}_sentences')]


def colorization_sentences(images: Sequence[str], n_shots: int = 8, n_epochs: int = 2,
                           seed: int = 0) -> List[dict]:
    """Colour images -> ``{"images": [c1 .. cn], "type": "colorization"}``, ``n_shots`` per
    sentence, re-permuted every epoch; :class:`ToGrayPair` makes ``[g1, c1, .., gn, cn]``."""
    return _source_sentences(images, n_shots, n_epochs, seed, 'colorization')


def inpainting_sentences(images: Sequence[str], n_shots: int = 8, n_epochs: int = 5,
                         seed: int = 0) -> List[dict]:
    """Images -> ``{"images": [o1 .. on], "type": "inpainting"}``, ``n_shots`` per sentence,
    re-permuted every epoch; :class:`RandomBoxOrPatchMask` makes ``[m1, o1, .., mn, on]``."""
    return _source_sentences(images, n_shots, n_epochs, seed, 'inpainting')


def category_sentences(classes: Mapping[str, Sequence[str]], images_per_shot: int = 4,
                       n_shots: int = 4, n_epochs: int = 1, seed: int = 0) -> List[dict]:
    """Class folders -> ``{"images": [A, A, A, A, B, ..], "type": "category", "classes":
    [A, B, ..]}``: ``images_per_shot`` images drawn without replacement from each of ``n_shots``
    classes (``DATASET.md``). Every epoch the classes are permuted into groups of ``n_shots``;
    classes with fewer than ``images_per_shot`` images are left out."""
    if images_per_shot < 1:
        raise ValueError(f'category_sentences: images_per_shot must be >= 1, got '
                         f'{images_per_shot}.')
    names = [c for c in classes if len(classes[c]) >= images_per_shot]
    rng = np.random.default_rng(seed)
    lines = []
    for row in _groups(len(names), n_shots, n_epochs, rng, 'category_sentences '
                       f'(classes with >= {images_per_shot} images)'):
        chosen = [names[i] for i in row]
        images = [classes[c][j] for c in chosen
                  for j in rng.choice(len(classes[c]), images_per_shot, replace=False)]
        lines.append(dict(images=images, type='category', classes=chosen))
    return lines


def multi_annotation_sentences(modalities: Mapping[str, Sequence[str]], n_examples: int = 3,
                               n_epochs: int = 5, shuffle_tasks: bool = True,
                               seed: int = 0) -> List[dict]:
    """Images with several annotations -> ``{"images": [..], "type": "multi", "modalities":
    [order]}`` (official ``tokenize_multi_datasets_muse.py``).

    ``modalities`` maps a name (``'rgb'``, ``'depth'`` ...) to its images; files are matched
    across modalities by basename without extension and only complete groups are kept. A
    sentence holds ``n_examples`` groups, each as its modalities in one order: the given one, or,
    with ``shuffle_tasks``, one random order per sentence shared by its examples. Groups are
    shuffled, then re-permuted into new sentences every epoch."""
    if len(modalities) < 1:
        raise ValueError('multi_annotation_sentences: no modalities given.')
    by_key = OrderedDict()
    for m, paths in modalities.items():
        for p in paths:
            key = osp.splitext(osp.basename(p))[0]
            if m in by_key.setdefault(key, {}):
                raise ValueError(f'multi_annotation_sentences: modality {m!r} has two files '
                                 f'named {key!r}: {by_key[key][m]} and {p}.')
            by_key[key][m] = p
    names = list(modalities)
    groups = [by_key[k] for k in sorted(by_key, key=_natural_key) if len(by_key[k]) == len(names)]
    rng = np.random.default_rng(seed)
    rng.shuffle(groups)
    lines = []
    for row in _groups(len(groups), n_examples, n_epochs, rng,
                       f'multi_annotation_sentences ({len(groups)} complete groups of {names})'):
        order = [names[i] for i in rng.permutation(len(names))] if shuffle_tasks else names
        lines.append(dict(images=[groups[i][m] for i in row for m in order], type='multi',
                          modalities=order))
    return lines


def write_sentences(lines: Iterable[dict], out_file: str) -> str:
    """Write lines as JSON lines (atomically: a temporary file renamed); returns ``out_file``."""
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    with atomic_write(out_file, encoding='utf-8') as f:
        for line in lines:
            f.write(json.dumps(line) + '\n')
    return out_file
