"""Pre-extracted VAE latents for latent diffusion training (DiT / SiT).

``tools/generation/extract_latents.py`` encodes an image dataset once with the frozen
:class:`~visionllama_mm.models.diffusion.vae.StableDiffusionVAE` and writes, into one folder::

    latents.npy   float16 (views, N, 2C, h, w): the VAE posterior's moments of every image, the mean
                  (first C channels) then the log-variance, unscaled; view 0 is the image, view 1
                  (only when extracted with --hflip, so views == 2) its horizontal flip
    labels.npy    int64 (N,): the class of every image, in the source dataset's order
    meta.json     {"count": N, "views": 1|2, "shape": [2C, h, w], "dtype": "float16",
                   "scale": 0.18215, "vae": path, "vae_sha256": ..., "image_size": [H, W],
                   "source": {...}, "classes": [...] | null, "num_classes": K | null,
                   "complete": true}

``complete`` is false while the extraction is running or was interrupted (a rerun of the tool
resumes it); such a folder is refused. :class:`LatentDataset` memory-maps the two arrays (no
pickle) and yields the moments, so a fresh latent is drawn from the posterior every time an image
is seen (``StableDiffusionVAE.sample_latents``, in the model), as when encoding on the fly.
"""
import json
import os.path as osp

import numpy as np
import torch
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

from ..registry import DATASETS

__all__ = ['LatentDataset', 'read_latent_meta', 'LATENTS_FILE', 'LABELS_FILE', 'META_FILE']

LATENTS_FILE = 'latents.npy'
LABELS_FILE = 'labels.npy'
META_FILE = 'meta.json'


def read_latent_meta(data_root: str) -> dict:
    """``{data_root}/meta.json`` as a dict; ``FileNotFoundError`` naming it when absent."""
    path = osp.join(data_root, META_FILE)
    if not osp.isfile(path):
        raise FileNotFoundError(f'LatentDataset: {path} does not exist; write the latents with '
                                'tools/generation/extract_latents.py CONFIG ' + str(data_root))
    with open(path) as f:
        return json.load(f)


def _open_array(path: str) -> np.ndarray:
    """A memory-mapped ``.npy`` file (no pickled objects), or an error naming it."""
    try:
        return np.load(path, mmap_mode='r', allow_pickle=False)
    except ValueError as err:
        raise ValueError(f'LatentDataset: {path} is not a plain numeric .npy array: {err}') from err


@DATASETS.register_module()
class LatentDataset(Dataset):
    """VAE moments written by ``tools/generation/extract_latents.py`` (layout: module docstring).

    Items are ``dict(inputs=FloatTensor (2C, h, w), data_samples=DataSample)`` with ``gt_label``
    and ``sample_idx`` set; ``ClassConditionalDiffusion(latent_input=True)`` samples the latents
    from them. A plain torch ``Dataset`` rather than mmengine's ``BaseDataset``: the latter builds
    and serialises a per-item list of dicts (1.28M for ImageNet) that a memory-mapped array does
    not need, and its pipeline has nothing to do here (the images' transforms were applied before
    encoding). Random access and ``len`` are all the Runner's samplers use; ``metainfo`` is saved
    in checkpoints as for any mmengine dataset.

    Args:
        data_root: The folder the tool wrote.
        flip: When the folder holds the flipped images too (``views == 2``), pick one of the two
            views at random for every item (the horizontal flip of DiT's training); without
            flipped views the images are used as they are.
        test_mode: Always the unflipped view (deterministic).
        lazy_init: Open and check the files on first access (or ``full_init()``) instead of in
            the constructor.
    """

    def __init__(self, data_root: str, flip: bool = True, test_mode: bool = False,
                 lazy_init: bool = False):
        self.data_root = str(data_root)
        self.flip = flip
        self.test_mode = test_mode
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    def full_init(self) -> None:
        """Open the arrays (memory-mapped) and check them against ``meta.json``."""
        if self._fully_initialized:
            return
        meta = read_latent_meta(self.data_root)
        meta_path = osp.join(self.data_root, META_FILE)
        if not meta.get('complete', False):
            raise ValueError(f'LatentDataset: {meta_path} says the extraction is incomplete '
                             f'({meta.get("count")} images expected); run '
                             'tools/generation/extract_latents.py again with the same arguments '
                             'to finish it.')
        latents_path = osp.join(self.data_root, LATENTS_FILE)
        labels_path = osp.join(self.data_root, LABELS_FILE)
        for path in (latents_path, labels_path):
            if not osp.isfile(path):
                raise FileNotFoundError(f'LatentDataset: {path} does not exist although '
                                        f'{meta_path} says the extraction is complete.')
        latents, labels = _open_array(latents_path), _open_array(labels_path)
        count, views = int(meta['count']), int(meta['views'])
        expected = (views, count, *map(int, meta['shape']))
        if latents.shape != expected or latents.dtype not in (np.float16, np.float32):
            raise ValueError(f'LatentDataset: {latents_path} is {latents.dtype} '
                             f'{latents.shape}, but {meta_path} describes float16 {expected} '
                             '(views, count, channels, h, w).')
        if labels.shape != (count, ) or labels.dtype.kind not in 'iu':
            raise ValueError(f'LatentDataset: {labels_path} is {labels.dtype} {labels.shape}, '
                             f'but {meta_path} describes {count} integer labels.')
        if views not in (1, 2):
            raise ValueError(f'LatentDataset: {meta_path}: views must be 1 or 2, got {views}.')
        self.meta, self.latents, self.labels = meta, latents, labels
        self._fully_initialized = True

    def __getstate__(self) -> dict:
        # pickled without the memory maps (a memmap pickles as a full copy); reopened on use
        state = {k: v for k, v in self.__dict__.items() if k not in ('latents', 'labels')}
        state['_fully_initialized'] = False
        return state

    @property
    def metainfo(self) -> dict:
        """``classes`` (when the source dataset had names), ``num_classes`` and the extraction's
        settings (VAE, scale, image size, views, count)."""
        self.full_init()
        info = {k: v for k, v in self.meta.items() if k != 'complete'}
        if info.get('classes') is not None:
            info['classes'] = tuple(info['classes'])
        else:
            info.pop('classes', None)
        return info

    def __len__(self) -> int:
        self.full_init()
        return len(self.labels)

    def __getitem__(self, idx: int) -> dict:
        self.full_init()
        n = len(self.labels)
        if not -n <= idx < n:
            raise IndexError(f'LatentDataset: index {idx} out of range for {n} items.')
        idx = int(idx) % n
        view = 0
        if self.flip and not self.test_mode and self.latents.shape[0] == 2:
            view = int(np.random.randint(2))
        moments = torch.from_numpy(np.array(self.latents[view, idx], dtype=np.float32))
        sample = DataSample().set_gt_label(int(self.labels[idx]))
        sample.set_metainfo(dict(sample_idx=idx))
        return dict(inputs=moments, data_samples=sample)

    def __repr__(self) -> str:
        if not self._fully_initialized:
            return f'LatentDataset(data_root={self.data_root!r}, not initialised)'
        return (f'LatentDataset(data_root={self.data_root!r}, count={len(self)}, '
                f'views={self.latents.shape[0]}, shape={tuple(self.latents.shape[2:])}, '
                f'flip={self.flip}, test_mode={self.test_mode})')
