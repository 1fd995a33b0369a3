"""The quickstart's digits: real images, ImageNet format, fixed split."""
import os.path as osp

import numpy as np
from PIL import Image

from visionllama_mm.datasets import DigitsDataset, prepare_digits


def test_split_is_fixed_and_stratified(digits_root):
    train = open(osp.join(digits_root, 'meta', 'train.txt')).read().splitlines()
    val = open(osp.join(digits_root, 'meta', 'val.txt')).read().splitlines()
    assert (len(train), len(val)) == (1438, 359)
    assert not set(train) & set(val)
    counts = np.bincount([int(line.split()[1]) for line in val], minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    # idempotent: a second call does not rewrite anything
    assert prepare_digits(digits_root) == digits_root
    assert open(osp.join(digits_root, 'meta', 'val.txt')).read().splitlines() == val


def test_images_are_real_digits(digits_root):
    first = open(osp.join(digits_root, 'meta', 'train.txt')).readline().split()
    img = np.asarray(Image.open(osp.join(digits_root, first[0])))
    assert img.shape == (32, 32) and img.dtype == np.uint8
    assert img.max() > 200 and img.min() < 30  # ink on background


def test_dataset_through_stock_pipeline(digits_root):
    ds = DigitsDataset(data_root=digits_root, split='val',
                       pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    assert len(ds) == 359 and ds.metainfo['classes'][3] == '3'
    item = ds[0]
    assert tuple(item['inputs'].shape) == (3, 32, 32)
    assert int(item['data_samples'].gt_label) == int(
        open(osp.join(digits_root, 'meta', 'val.txt')).readline().split()[1])
