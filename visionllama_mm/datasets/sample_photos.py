"""Tiles of scikit-learn's two sample photos (``china.jpg``, ``flower.jpg``, 427x640 RGB), for
training an image tokenizer on real photographs without downloading anything (LVM)."""
import os
import os.path as osp

import numpy as np
from mmpretrain.datasets import CustomDataset

from ..registry import DATASETS
from .checks import check_annotation_file
from .folders import write_folder_once
from .run_record import RECORD_FILE, check_folder_record, first_listed_image_width, write_record

__all__ = ['SamplePhotoTiles', 'prepare_sample_photo_tiles']


def prepare_sample_photo_tiles(data_root: str, tile_size: int = 32, val_every: int = 5) -> str:
    """Cut both photos into non-overlapping ``tile_size`` squares under ``data_root``
    (idempotent, atomic): ``train/`` and ``val/`` PNG folders and ``meta/{split}.txt`` lists.
    Every ``val_every``-th tile column goes to ``val``, so validation tiles are unseen regions.
    Returns ``data_root``. ``data_root/run_record.json`` records ``tile_size`` and
    ``val_every``; a folder written with others is refused, naming them (not rewritten: other
    runs may be reading it); use one ``data_root`` per tiling."""
    for name, value, top in (('tile_size', tile_size, 427), ('val_every', val_every, 640)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise ValueError(f'SamplePhotoTiles: {name} must be an int in [1, {top}] (the '
                             f'photos are 427x640), got {value!r}.')
    record = dict(writer='SamplePhotoTiles', tile_size=tile_size, val_every=val_every)

    def write(folder):
        from PIL import Image
        from sklearn.datasets import load_sample_images

        lists = dict(train=[], val=[])
        for split in lists:
            os.makedirs(osp.join(folder, split))
        os.makedirs(osp.join(folder, 'meta'))
        for p, photo in enumerate(load_sample_images().images):
            rows, cols = photo.shape[0] // tile_size, photo.shape[1] // tile_size
            for r in range(rows):
                for c in range(cols):
                    split = 'val' if c % val_every == val_every - 1 else 'train'
                    rel = f'{split}/{p}_{r:02d}_{c:02d}.png'
                    tile = photo[r * tile_size:(r + 1) * tile_size,
                                 c * tile_size:(c + 1) * tile_size]
                    Image.fromarray(np.ascontiguousarray(tile)).save(osp.join(folder, rel))
                    lists[split].append(rel + '\n')
        for split, lines in lists.items():
            with open(osp.join(folder, 'meta', f'{split}.txt'), 'w') as f:
                f.writelines(lines)
        write_record(osp.join(folder, RECORD_FILE), record)

    write_folder_once(data_root, write, 'SamplePhotoTiles')
    check_folder_record(data_root, record, 'SamplePhotoTiles',
                        legacy=lambda root: dict(tile_size=first_listed_image_width(root)))
    return data_root


@DATASETS.register_module()
class SamplePhotoTiles(CustomDataset):
    """Unlabelled tiles of the two scikit-learn sample photos, written on first use.

    Args:
        data_root: Where the tiles are (or will be) written.
        split: ``'train'`` or ``'val'`` (every 5th tile column: 104 tiles of 32 px).
        tile_size: Side of the tiles (set when the folder is first created; 32 gives 416 train
            tiles).
        **kwargs: Passed to mmpretrain's ``CustomDataset`` (``pipeline`` ...).
    """

    def __init__(self, data_root: str = 'data/sample_photos', split: str = 'train',
                 tile_size: int = 32, **kwargs):
        if split not in ('train', 'val'):
            raise ValueError(f'SamplePhotoTiles: split must be "train" or "val", got {split!r}.')
        prepare_sample_photo_tiles(data_root, tile_size)
        check_annotation_file(osp.join(data_root, 'meta', f'{split}.txt'), 'SamplePhotoTiles')
        super().__init__(data_root=data_root, ann_file=f'meta/{split}.txt', data_prefix='',
                         with_label=False, **kwargs)
