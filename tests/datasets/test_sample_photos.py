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
