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


def test_folder_of_other_parameters_is_refused(digits_root, tmp_path):
    import pytest
    with pytest.raises(ValueError, match=rf'DigitsDataset: data_root {digits_root} was written '
                                         r'for other inputs: image_size: 32 \(then\) -> 16 '
                                         r'\(now\)\. Refusing to mix or reuse it; point data_root'
                                         r' at another folder'):
        DigitsDataset(data_root=digits_root, image_size=16)
    with pytest.raises(ValueError, match='image_size must be a positive int, got 0'):
        prepare_digits(str(tmp_path / 'none'), size=0)
    # a folder written before run records: its first image tells the size
    legacy = tmp_path / 'legacy'
    (legacy / 'meta').mkdir(parents=True)
    (legacy / '.complete').write_text('')
    (legacy / 'meta' / 'train.txt').write_text('train/0/00000.png 0\n')
    (legacy / 'train' / '0').mkdir(parents=True)
    Image.new('L', (64, 64)).save(legacy / 'train' / '0' / '00000.png')
    assert prepare_digits(str(legacy), size=64) == str(legacy)
    with pytest.raises(ValueError, match=r'image_size: 64 \(then\) -> 32 \(now\)'):
        prepare_digits(str(legacy))


def test_digit_captions_never_mix_two_runs(digits_root, tmp_path):
    """Another shard count / seed into the same folder is refused (no stale shards globbed with
    new ones); the same inputs write nothing; overwrite=True replaces every old shard."""
    import os

    import pytest

    from visionllama_mm.datasets import write_digit_captions
    templates = ('the digit {}.', 'a {}.')
    out = tmp_path / 'caps'
    write_digit_captions(digits_root, str(out), templates, num_shards=3, split='val')
    assert sorted(p.name for p in out.iterdir()) == [
        'val-00000.tar', 'val-00001.tar', 'val-00002.tar', 'val.jsonl', 'val.record.json']
    stamp = os.stat(out / 'val-00000.tar').st_mtime_ns
    write_digit_captions(digits_root, str(out), templates, num_shards=3, split='val')
    assert os.stat(out / 'val-00000.tar').st_mtime_ns == stamp  # nothing rewritten
    with pytest.raises(ValueError, match=rf'{out} was written \(val split\) for other inputs: '
                                         r'num_shards: 3 \(then\) -> 2 \(now\); seed: 0 \(then\) '
                                         r'-> 1 \(now\)\. Refusing to mix or reuse it; pass '
                                         r'--overwrite \(overwrite=True\)'):
        write_digit_captions(digits_root, str(out), templates, num_shards=2, split='val', seed=1)
    write_digit_captions(digits_root, str(out), templates, num_shards=2, split='val', seed=1,
                         overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [
        'val-00000.tar', 'val-00001.tar', 'val.jsonl', 'val.record.json']
    (out / 'val.record.json').unlink()
    with pytest.raises(ValueError, match=r'already holds val files \(val-00000.tar, '
                                         r'val-00001.tar, val.jsonl\) without val.record.json'):
        write_digit_captions(digits_root, str(out), templates, num_shards=2, split='val')
