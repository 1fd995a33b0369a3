"""Visual sentences for LVM: builders, transforms, dataset.

A visual sentence is a run of images with no separator; BOS/EOS are added by whoever turns it into
tokens (:class:`~visionllama_mm.models.lvm.LVM` online, ``tools/lvm/tokenize_sentences.py``
offline), never here.

Annotation files hold one JSON object per line, paths relative to ``data_root``:

* ours: ``{"images": [paths], "type": "single|sequence|pair|colorization|inpainting|category|
  multi"}`` (other keys are kept as information); a video sentence is ``{"video": path,
  "frames": [indices], "type": "video"}``. Colorization and inpainting lines list the source
  images: the pipeline makes the (input, source) pair of each.
* the official evaluation files (LVM's ``evaluation/EVAL.md``): ``{"input": [paths],
  "target": [paths]}`` for perplexity (type ``'perplexity'``) and ``{"input": [paths],
  "output": path(s)}`` for generation (type ``'generation'``; ``output`` is the ground-truth
  next image(s)). The targets are the sentence's last images (``num_target_images``).

The builders (``*_sentences``) are pure functions from lists of paths to such lines, seeded,
following the official tokenize scripts (``tokenize_examples/*.py``); :func:`write_sentences`
writes them.

The default pipeline, :func:`default_sentence_pipeline`: :class:`LoadImageSequence` (RGB,
PIL; video frames through cv2) -> :class:`ResizeEach` (S x S, no crop, aspect not kept) ->
:class:`ToFloat01` -> :class:`ToGrayPair` (colorization lines) -> :class:`RandomBoxOrPatchMask`
(inpainting lines) -> :class:`PackVisualSentence`, giving ``dict(inputs=FloatTensor (N, 3, S, S)
in [0, 1], data_samples=BaseDataElement(metainfo=dict(sentence_type, num_images,
num_target_images, img_paths)))``.
"""
import json
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from mmengine.structures import BaseDataElement

from ..registry import DATASETS, TRANSFORMS
from .image_text import build_pipeline

__all__ = [
    'VisualSentenceDataset', 'LoadImageSequence', 'ResizeEach', 'ToFloat01', 'ToGrayPair',
    'RandomBoxOrPatchMask', 'PackVisualSentence', 'default_sentence_pipeline', 'list_images',
    'list_videos', 'list_classes', 'read_video_frames', 'count_video_frames',
    'single_image_sentences', 'frame_sequence_sentences', 'video_sentences', 'paired_sentences',
    'colorization_sentences', 'inpainting_sentences', 'category_sentences',
    'multi_annotation_sentences', 'write_sentences', 'SENTENCE_TYPES'
]

#: ``type`` values of our lines; ``'perplexity'`` / ``'generation'`` come from the eval format.
SENTENCE_TYPES = ('single', 'sequence', 'video', 'pair', 'colorization', 'inpainting', 'category',
                  'multi', 'perplexity', 'generation')
IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp')
VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm')
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # colorization, as the official tokenize script


# --------------------------------------------------------------------------------------------
# Reading images and videos
# --------------------------------------------------------------------------------------------
def read_video_frames(path: str, frames: Sequence[int]) -> List[np.ndarray]:
    """Frames ``frames`` (any order, repeats allowed) of a video file as RGB uint8 (H, W, 3).

    The video is decoded sequentially up to the last frame asked for (exact, unlike seeking)."""
    import cv2
    if not osp.isfile(path):
        raise FileNotFoundError(f'read_video_frames: {path} does not exist.')
    wanted = sorted(set(int(i) for i in frames))
    if not wanted or wanted[0] < 0:
        raise ValueError(f'read_video_frames: {path}: frame indices must be >= 0, got '
                         f'{list(frames)}.')
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise ValueError(f'read_video_frames: cv2 cannot open {path}.')
    got = {}
    try:
        for index in range(wanted[-1] + 1):
            if not cap.grab():
                raise ValueError(f'read_video_frames: {path} has only {index} frames, frame '
                                 f'{wanted[-1]} was asked for.')
            if index in wanted:
                ok, frame = cap.retrieve()
                if not ok:
                    raise ValueError(f'read_video_frames: cannot decode frame {index} of {path}.')
                got[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    return [got[int(i)] for i in frames]


def count_video_frames(path: str) -> int:
    """Frame count of a video file (the container's count, as the official scripts use)."""
    import cv2
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise ValueError(f'count_video_frames: cv2 cannot open {path}.')
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return count


# --------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------
@TRANSFORMS.register_module()
class LoadImageSequence(BaseTransform):
    """``results['img_paths']`` (or ``video`` + ``frames``) -> ``results['imgs']``: a list of
    RGB uint8 (H, W, 3) arrays. Image files are opened with PIL and converted to RGB;
    video frames are decoded by cv2 and converted BGR -> RGB."""

    def transform(self, results: dict) -> dict:
        from PIL import Image, UnidentifiedImageError
        if results.get('video') is not None:
            imgs = read_video_frames(results['video'], results['frames'])
        else:
            imgs = []
            for path in results['img_paths']:
                try:
                    with Image.open(path) as img:
                        imgs.append(np.asarray(img.convert('RGB')))
                except FileNotFoundError:
                    raise FileNotFoundError(f'LoadImageSequence: {path} (sample '
                                            f'{results.get("sample_idx", "?")}) does not '
                                            'exist.') from None
                except (UnidentifiedImageError, OSError) as err:
                    raise ValueError(f'LoadImageSequence: cannot read {path} (sample '
                                     f'{results.get("sample_idx", "?")}): {err}') from None
        results['imgs'] = imgs
        return results


@TRANSFORMS.register_module()
class ResizeEach(BaseTransform):
    """Resize every image of ``results['imgs']`` to ``scale`` x ``scale``: no crop, aspect ratio
    not kept. Image files use PIL's default filter (bicubic), as the official
    ``img.resize((256, 256))``; video frames use cv2's default (bilinear), as the official
    video reader."""

    def __init__(self, scale: int = 256):
        if scale < 1:
            raise ValueError(f'ResizeEach: scale must be >= 1, got {scale}.')
        self.scale = scale

    def transform(self, results: dict) -> dict:
        from PIL import Image
        if any(img.dtype != np.uint8 for img in results['imgs']):
            raise TypeError('ResizeEach: expected uint8 images (LoadImageSequence), got '
                            f'{sorted({str(img.dtype) for img in results["imgs"]})}; resize '
                            'before ToFloat01.')
        size = (self.scale, self.scale)
        if results.get('video') is not None:
            import cv2
            results['imgs'] = [cv2.resize(img, size) for img in results['imgs']]
        else:
            results['imgs'] = [np.asarray(Image.fromarray(img).resize(size))
                               for img in results['imgs']]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(scale={self.scale})'


@TRANSFORMS.register_module()
class ToFloat01(BaseTransform):
    """uint8 images of ``results['imgs']`` -> float32 in [0, 1] (pixel / 255)."""

    def transform(self, results: dict) -> dict:
        results['imgs'] = [img.astype(np.float32) / 255. for img in results['imgs']]
        return results


def _pairs(results: dict, make_input, where: str) -> dict:
    """Each image ``x`` -> ``make_input(x), x`` (and each path repeated)."""
    imgs = []
    for img in results['imgs']:
        if img.dtype != np.float32:
            raise TypeError(f'{where}: expected float32 images in [0, 1], got {img.dtype}; put '
                            'ToFloat01 before it.')
        imgs += [make_input(img), img]
    results['imgs'] = imgs
    results['img_paths'] = [p for p in results['img_paths'] for _ in range(2)]
    return results


@TRANSFORMS.register_module()
class ToGrayPair(BaseTransform):
    """Colorization lines: every image ``c`` becomes the pair ``gray(c), c`` with
    ``gray = 0.2989 R + 0.5870 G + 0.1140 B`` copied to 3 channels. Other sentence
    types pass through."""

    def transform(self, results: dict) -> dict:
        if results.get('sentence_type') != 'colorization':
            return results

        def gray(img):
            return np.stack([img @ np.asarray(GRAY_WEIGHTS, np.float32)] * 3, axis=-1)

        return _pairs(results, gray, 'ToGrayPair')


@TRANSFORMS.register_module()
class RandomBoxOrPatchMask(BaseTransform):
    """Inpainting lines: every image ``o`` becomes the pair ``masked(o), o``.

    With probability ``box_prob`` one black square of side ``U[0.1, 0.5) * min(H, W)`` (integer,
    upper end excluded) at a uniformly random position; otherwise the image is cut into a
    ``grid`` x ``grid`` array of patches, a keep ratio ``r ~ U(0, 1)`` is drawn and each patch is
    kept with probability ``r`` (zeroed otherwise). Random numbers come from
    ``results['rng_seed']`` (set per line by :class:`VisualSentenceDataset` from its ``seed``),
    so a line always gets the same masks. Other sentence types pass through.

    Args:
        box_prob: Probability of the square (the official ``hole_mask_ratio`` = 0.3).
        box_scale: Range of the square's side as a fraction of ``min(H, W)``.
        grid: Patches per side (8: 32-px patches of 256-px images); H and W must be multiples.
    """

    def __init__(self, box_prob: float = 0.3, box_scale: Sequence[float] = (0.1, 0.5),
                 grid: int = 8):
        if not 0 <= box_prob <= 1 or not 0 < box_scale[0] < box_scale[1] <= 1 or grid < 1:
            raise ValueError(f'RandomBoxOrPatchMask: need 0 <= box_prob <= 1, 0 < box_scale[0] '
                             f'< box_scale[1] <= 1 and grid >= 1; got {box_prob}, {box_scale}, '
                             f'{grid}.')
        self.box_prob, self.box_scale, self.grid = box_prob, tuple(box_scale), grid

    def mask(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A masked copy of one (H, W, 3) image."""
        h, w = img.shape[:2]
        out = img.copy()
        if rng.random() < self.box_prob:
            side = min(h, w)
            low = max(1, int(self.box_scale[0] * side))
            size = int(rng.integers(low, max(low + 1, int(self.box_scale[1] * side))))
            top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
            out[top:top + size, left:left + size] = 0
            return out
        if h % self.grid or w % self.grid:
            raise ValueError(f'RandomBoxOrPatchMask: image {h}x{w} is not a whole number of '
                             f'{self.grid}x{self.grid} patches.')
        keep = rng.random((self.grid, self.grid)) < rng.random()
        keep = np.repeat(np.repeat(keep, h // self.grid, 0), w // self.grid, 1)
        return out * keep[..., None].astype(out.dtype)

    def transform(self, results: dict) -> dict:
        if results.get('sentence_type') != 'inpainting':
            return results
        if 'rng_seed' not in results:
            raise KeyError('RandomBoxOrPatchMask: results has no "rng_seed" (VisualSentenceDataset '
                           'sets one per line, for masks that are the same every time).')
        rng = np.random.default_rng(results['rng_seed'])
        return _pairs(results, lambda img: self.mask(img, rng), 'RandomBoxOrPatchMask')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(box_prob={self.box_prob}, box_scale={self.box_scale}, '
                f'grid={self.grid})')


@TRANSFORMS.register_module()
class PackVisualSentence(BaseTransform):
    """``results['imgs']`` -> ``dict(inputs=FloatTensor (N, 3, S, S), data_samples=
    BaseDataElement(metainfo=dict(sentence_type, num_images, num_target_images, img_paths)))``.

    Images must be float32 in [0, 1] (:class:`ToFloat01`) and of one size (:class:`ResizeEach`).
    ``num_target_images`` counts the sentence's last images that are targets (evaluation lines;
    0 for training sentences). Video lines add ``frames`` to the metainfo."""

    def transform(self, results: dict) -> dict:
        imgs = results['imgs']
        shapes = {img.shape for img in imgs}
        if len(shapes) != 1 or any(img.dtype != np.float32 for img in imgs):
            raise ValueError(f'PackVisualSentence: sample {results.get("sample_idx", "?")} has '
                             f'images of shapes {sorted(shapes)} and dtypes '
                             f'{sorted({str(i.dtype) for i in imgs})}; expected one size and '
                             'float32 (ResizeEach and ToFloat01 before packing).')
        inputs = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
        meta = dict(sentence_type=results['sentence_type'], num_images=len(imgs),
                    num_target_images=results.get('num_target_images', 0),
                    img_paths=list(results['img_paths']))
        if results.get('video') is not None:
            meta['frames'] = list(results['frames'])
        return dict(inputs=inputs, data_samples=BaseDataElement(metainfo=meta))


def default_sentence_pipeline(image_size: int = 256) -> List[dict]:
    """Load, resize to ``image_size`` (no crop), [0, 1], colorization / inpainting pairs, pack."""
    return [dict(type='LoadImageSequence'), dict(type='ResizeEach', scale=image_size),
            dict(type='ToFloat01'), dict(type='ToGrayPair'), dict(type='RandomBoxOrPatchMask'),
            dict(type='PackVisualSentence')]


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------
def _path_list(value, key: str, where: str) -> List[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or \
            not all(isinstance(v, str) and v for v in values):
        raise ValueError(f'{where}: "{key}" must be a path or a non-empty list of paths, got '
                         f'{value!r}.')
    return values


@DATASETS.register_module()
class VisualSentenceDataset(BaseDataset):
    """Visual sentences listed in a JSON-lines file (one sentence per line; see the module
    docstring for the line formats).

    Args:
        ann_file: The JSONL file (relative to ``data_root`` unless absolute).
        data_root: Prefix of the annotation file and of every path in it.
        pipeline: Transforms; ``None`` gives :func:`default_sentence_pipeline` (``image_size``).
        image_size: Side of the default pipeline's resize (unused when ``pipeline`` is given).
        seed: Seed of the per-line random numbers (inpainting masks): line ``i`` gets
            ``rng_seed = [seed, i]``.
        **kwargs: ``BaseDataset``'s (``indices``, ``test_mode``, ``lazy_init`` ...).
    """

    def __init__(self, ann_file: str, data_root: str = '', pipeline: Optional[Sequence] = None,
                 image_size: int = 256, seed: int = 0, **kwargs):
        self.image_size, self.seed = image_size, seed
        if pipeline is None:
            pipeline = default_sentence_pipeline(image_size)
        super().__init__(ann_file=ann_file, data_root=data_root,
                         pipeline=build_pipeline(pipeline).transforms, **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'VisualSentenceDataset: annotation file {self.ann_file} '
                                    'does not exist.')
        data_list = []
        with open(self.ann_file, 'rb') as f:
            for number, raw in enumerate(f, 1):
                where = f'{self.ann_file}:{number}'
                try:
                    line = raw.decode('utf-8')
                except UnicodeDecodeError as err:
                    raise ValueError(f'{where}: not UTF-8 text ({err}).') from None
                if line.strip():
                    data_list.append(self._parse(line, where, len(data_list)))
        if not data_list:
            raise ValueError(f'VisualSentenceDataset: annotation file {self.ann_file} has no '
                             'sentences.')
        return data_list

    def _parse(self, line: str, where: str, index: int) -> dict:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f'{where}: not a JSON object ({err.msg}).') from None
        if not isinstance(row, dict):
            raise ValueError(f'{where}: expected a JSON object, got {type(row).__name__}.')
        info = dict(rng_seed=[self.seed, index], num_target_images=0, video=None)
        if 'input' in row:
            targets = [k for k in ('target', 'output') if k in row]
            if len(targets) != 1:
                raise ValueError(f'{where}: an evaluation line needs "input" and exactly one of '
                                 f'"target" (perplexity) / "output" (generation); it has '
                                 f'{sorted(row)}.')
            inputs = _path_list(row['input'], 'input', where)
            target = _path_list(row[targets[0]], targets[0], where)
            paths = inputs + target
            info.update(sentence_type='perplexity' if targets[0] == 'target' else 'generation',
                        num_target_images=len(target))
        elif 'video' in row:
            frames = row.get('frames')
            if not isinstance(frames, list) or not frames or not all(
                    isinstance(i, int) and i >= 0 for i in frames):
                raise ValueError(f'{where}: a video line needs "frames", a non-empty list of '
                                 f'frame indices >= 0; got {frames!r}.')
            video = osp.join(self.data_root, _path_list(row['video'], 'video', where)[0])
            paths = [video] * len(frames)
            info.update(sentence_type=row.get('type', 'video'), video=video, frames=frames)
        elif 'images' in row:
            paths = _path_list(row['images'], 'images', where)
            info['sentence_type'] = row.get('type', 'single' if len(paths) == 1 else 'sequence')
        else:
            raise ValueError(f'{where}: expected "images" (training sentence), "video" + "frames" '
                             f'or "input" + "target"/"output" (evaluation); the line has '
                             f'{sorted(row)}.')
        if info['sentence_type'] not in SENTENCE_TYPES:
            raise ValueError(f'{where}: unknown type {info["sentence_type"]!r}; expected one of '
                             f'{SENTENCE_TYPES}.')
        if info['video'] is None:
            paths = [osp.join(self.data_root, p) for p in paths]
        info['img_paths'] = paths
        return info


# --------------------------------------------------------------------------------------------
# Builders: lists of paths -> lines
# --------------------------------------------------------------------------------------------
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
    with open(out_file + '.tmp', 'w', encoding='utf-8') as f:
        for line in lines:
            f.write(json.dumps(line) + '\n')
    os.replace(out_file + '.tmp', out_file)
    return out_file
