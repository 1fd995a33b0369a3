"""Tiles of scikit-learn's sample photos (the VQGAN tokenizer's real-image training data)."""
import os.path as osp

import numpy as np
from PIL import Image

from visionllama_mm.datasets import SamplePhotoTiles


def test_sample_photo_tiles(tmp_path):
    root = str(tmp_path / 'tiles')
    train = SamplePhotoTiles(data_root=root, split='train')
    val = SamplePhotoTiles(data_root=root, split='val')
    # two 427x640 photos in 32 px tiles: 13 rows x 20 columns each; every 5th column is val
    assert (len(train), len(val)) == (416, 104)
    names = [osp.basename(val.get_data_info(i)['img_path']) for i in range(len(val))]
    assert all(int(n.split('_')[2][:2]) % 5 == 4 for n in names)
    tile = np.asarray(Image.open(train.get_data_info(0)['img_path']))
    assert tile.shape == (32, 32, 3) and tile.std() > 5  # a real photo region, not a blank


def test_tiles_of_another_size_are_refused(tmp_path):
    import pytest
    root = str(tmp_path / 'big')
    assert len(SamplePhotoTiles(data_root=root, split='val', tile_size=128)) == 6
    with pytest.raises(ValueError, match=rf'SamplePhotoTiles: data_root {root} was written for '
                                         r'other inputs: tile_size: 128 \(then\) -> 32 \(now\)'):
        SamplePhotoTiles(data_root=root)
    with pytest.raises(ValueError, match=r'tile_size must be an int in \[1, 427\] \(the photos '
                                         r'are 427x640\), got 0'):
        SamplePhotoTiles(data_root=str(tmp_path / 'none'), tile_size=0)
