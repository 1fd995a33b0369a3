"""Visual sentences: video decoding and the transforms of the default pipeline.

:func:`default_sentence_pipeline`: :class:`LoadImageSequence` (RGB, PIL; video frames through cv2)
-> :class:`ResizeEach` (S x S, no crop, aspect not kept) -> :class:`ToFloat01` ->
:class:`ToGrayPair` (colorization lines) -> :class:`RandomBoxOrPatchMask` (inpainting lines) ->
:class:`PackVisualSentence`, giving ``dict(inputs=FloatTensor (N, 3, S, S) in [0, 1],
data_samples=BaseDataElement(metainfo=dict(sentence_type, num_images, num_target_images,
img_paths)))``.
"""
import os.path as osp
from typing import List, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from ...registry import TRANSFORMS

__all__ = [
    'LoadImageSequence', 'ResizeEach', 'ToFloat01', 'ToGrayPair', 'RandomBoxOrPatchMask',
    'PackVisualSentence', 'default_sentence_pipeline', 'read_video_frames', 'count_video_frames'
]

GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # colorization, as the official tokenize script


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
