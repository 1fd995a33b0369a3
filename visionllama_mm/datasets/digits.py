"""scikit-learn's 8x8 handwritten digits as an ImageNet-format dataset (the quickstart's data).

The 1,797 images ship inside scikit-learn, so nothing is downloaded. On first use they are
upsampled and written once, deterministically, as PNG files in the ImageNet layout that
mmpretrain's ``CustomDataset`` reads::

    data_root/train/<label>/<index>.png   data_root/meta/train.txt  ("train/3/00012.png 3")
    data_root/val/<label>/<index>.png     data_root/meta/val.txt

The split is fixed: a stratified 80/20 split with seed 0 (1,438 train / 359 val images).
``data_root/run_record.json`` records the parameters the folder was written with (the image
size); a folder written with other parameters is refused, naming them, rather than reused (it is
not rewritten either: other runs may be reading it); use one ``data_root`` per image size.
"""
import os
import os.path as osp
from typing import Sequence

import numpy as np
from mmpretrain.datasets import CustomDataset

from ..registry import DATASETS
from ..utils.files import atomic_path
from .checks import check_annotation_file
from .folders import write_folder_once
from .run_record import (RECORD_FILE, RunRecordMismatch, check_folder_record, check_record,
                         first_listed_image_width, list_fingerprint, read_record, write_record)

__all__ = ['DigitsDataset', 'prepare_digits', 'write_digit_captions', 'write_digit_counting_sentences',
           'DIGIT_WORDS']

DIGIT_CLASSES = tuple(str(i) for i in range(10))
DIGIT_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')


def _split(labels: np.ndarray, val_fraction: float = 0.2, seed: int = 0):
    """Stratified, seeded split -> (train indices, val indices), both sorted."""
    rng = np.random.RandomState(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(train), np.sort(val)


def prepare_digits(data_root: str, size: int = 32) -> str:
    """Write the digits under ``data_root`` (idempotent, safe with several processes).

    Returns ``data_root``. Images are 8-bit grayscale, upsampled from 8x8 to ``size`` x ``size``
    with bicubic interpolation. A ``data_root`` written with another ``size`` is refused.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f'DigitsDataset: image_size must be a positive int, got {size!r}.')
    record = dict(writer='DigitsDataset', image_size=size, val_fraction=0.2, split_seed=0)

    def write(folder):
        from PIL import Image
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.clip(digits.images * (255. / 16.), 0, 255).astype(np.uint8)
        labels = digits.target.astype(int)
        os.makedirs(osp.join(folder, 'meta'))
        for split, indices in zip(('train', 'val'), _split(labels)):
            lines = []
            for i in indices:
                rel = f'{split}/{labels[i]}/{i:05d}.png'
                os.makedirs(osp.join(folder, split, str(labels[i])), exist_ok=True)
                Image.fromarray(images[i]).resize((size, size), Image.BICUBIC).save(
                    osp.join(folder, rel))
                lines.append(f'{rel} {labels[i]}\n')
            with open(osp.join(folder, 'meta', f'{split}.txt'), 'w') as f:
                f.writelines(lines)
        write_record(osp.join(folder, RECORD_FILE), record)

    write_folder_once(data_root, write, 'DigitsDataset')
    check_folder_record(data_root, record, 'DigitsDataset',
                        legacy=lambda root: dict(image_size=first_listed_image_width(root)))
    return data_root


@DATASETS.register_module()
class DigitsDataset(CustomDataset):
    """The digits in ImageNet format, prepared on first use from the installed scikit-learn.

    Args:
        data_root: Where the images are (or will be) written.
        split: ``'train'`` (1,438 images) or ``'val'`` (359 images).
        image_size: Side of the written images (set when the folder is first created).
        **kwargs: Passed to mmpretrain's ``CustomDataset`` (``pipeline``, ``test_mode`` ...).
    """

    METAINFO = {'classes': DIGIT_CLASSES}

    def __init__(self, data_root: str = 'data/digits', split: str = 'train',
                 image_size: int = 32, **kwargs):
        if split not in ('train', 'val'):
            raise ValueError(f'DigitsDataset: split must be "train" or "val", got {split!r}.')
        prepare_digits(data_root, size=image_size)
        check_annotation_file(osp.join(data_root, 'meta', f'{split}.txt'), 'DigitsDataset')
        super().__init__(data_root=data_root, ann_file=f'meta/{split}.txt', data_prefix='',
                         **kwargs)


def write_digit_captions(digits_root: str, out_root: str, templates: Sequence[str],
                         num_shards: int = 4, split: str = 'train', seed: int = 0,
                         overwrite: bool = False) -> str:
    """Captioned digits for contrastive training: each image of ``split`` gets one template
    (drawn with ``seed``) filled with its number word ("a photo of the number seven."), written as

        out_root/{split}.jsonl                        {"image": "train/7/00012.png", "caption": ...}
        out_root/{split}-{00000..N-1}.tar             webdataset shards: <key>.png + <key>.txt
        out_root/{split}.record.json                  what they were written from

    The JSON lines name images relative to ``digits_root`` (for ``ImageTextDataset``); the shards
    hold the PNG bytes themselves (for ``WebDatasetImageText``). Returns ``out_root``.

    Written again with the same inputs (``digits_root``, ``split``, ``seed``, ``num_shards``,
    ``templates`` and the image list), finished files are left alone; with other inputs, or over
    ``{split}`` files without a record, it refuses, naming the differing fields -- never a glob of
    shards from two runs. ``overwrite=True`` deletes this split's files (every
    ``{split}-*.tar``) and writes them anew.
    """
    import glob
    import io
    import json
    import random
    import tarfile

    bad = [t for t in templates if t.count('{}') != 1]
    if not templates or bad:
        raise ValueError(f'write_digit_captions: templates need exactly one {{}} each, got {bad}')
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f'write_digit_captions: num_shards must be a positive int, got '
                         f'{num_shards!r}.')
    ann = osp.join(digits_root, 'meta', f'{split}.txt')
    if not osp.isfile(ann):
        raise FileNotFoundError(f'write_digit_captions: {ann} does not exist; is {digits_root} '
                                'a digits folder (prepare_digits)?')
    check_annotation_file(ann, 'write_digit_captions')
    rng = random.Random(seed)
    with open(osp.join(digits_root, 'meta', f'{split}.txt')) as f:
        rows = [line.split() for line in f if line.strip()]
    record = dict(writer='write_digit_captions', digits_root=osp.abspath(digits_root),
                  split=split, seed=seed, num_shards=num_shards, templates=list(templates),
                  images=list_fingerprint(rows), complete=True)
    record_path = osp.join(out_root, f'{split}.record.json')
    shards = glob.glob(osp.join(glob.escape(out_root), f'{glob.escape(split)}-*.tar*'))
    ours = [path for path in sorted({osp.join(out_root, f'{split}.jsonl'), record_path, *shards})
            if osp.exists(path)]
    if ours and not overwrite:
        then = read_record(record_path)
        if then is None:
            raise RunRecordMismatch(
                f'write_digit_captions: {out_root} already holds {split} files '
                f'({", ".join(osp.basename(p) for p in ours[:3])}) without '
                f'{osp.basename(record_path)}: what they were written from is unknown; pass '
                '--overwrite (overwrite=True) to replace them, or use another folder.')
        check_record(then, dict(record, complete=then.get('complete')), out_root,
                     what=f'written ({split} split)', hint='pass --overwrite (overwrite=True) '
                     'to replace its files, or use another folder')
        if then.get('complete'):
            return out_root  # the same inputs: nothing to write
    for path in ours:  # stale shards of another --shards count included
        os.remove(path)
    os.makedirs(out_root, exist_ok=True)
    write_record(record_path, dict(record, complete=False))
    samples = [(rel, rng.choice(templates).format(DIGIT_WORDS[int(label)]))
               for rel, label in rows]
    with open(osp.join(out_root, f'{split}.jsonl'), 'w') as f:
        for rel, caption in samples:
            f.write(json.dumps(dict(image=rel, caption=caption)) + '\n')
    width = 5
    for shard in range(num_shards):
        path = osp.join(out_root, f'{split}-{shard:0{width}d}.tar')
        with atomic_path(path) as tmp, tarfile.open(tmp, 'w') as tar:
            for i in range(shard, len(samples), num_shards):
                rel, caption = samples[i]
                key = f'{i:06d}'
                with open(osp.join(digits_root, rel), 'rb') as img:
                    data = img.read()
                for ext, payload in (('png', data), ('txt', caption.encode('utf-8'))):
                    info = tarfile.TarInfo(f'{key}.{ext}')
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    write_record(record_path, record)
    return out_root


def write_digit_counting_sentences(digits_root: str, out_file: str, num_sentences: int,
                                   num_images: int = 10, split: str = 'train',
                                   seed: int = 0) -> str:
    """Visual sentences of digits in counting order, for LVM: each sentence starts at a random
    digit d and continues d+1, d+2, ... (mod 10), every image a random instance of its digit from
    ``split``. Written as ``VisualSentenceDataset`` JSON lines relative to ``digits_root``::

        {"images": ["train/3/00012.png", "train/4/00101.png", ...], "type": "sequence"}

    Returns ``out_file``.
    """
    import json
    import random

    if num_images < 2 or num_sentences < 1:
        raise ValueError(f'write_digit_counting_sentences: need num_images >= 2 and '
                         f'num_sentences >= 1, got {num_images} and {num_sentences}.')
    rng = random.Random(seed)
    by_label = {}
    with open(osp.join(digits_root, 'meta', f'{split}.txt')) as f:
        for line in f:
            if line.strip():
                rel, label = line.split()
                by_label.setdefault(int(label), []).append(rel)
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    with open(out_file, 'w') as f:
        for _ in range(num_sentences):
            start = rng.randrange(10)
            images = [rng.choice(by_label[(start + i) % 10]) for i in range(num_images)]
            f.write(json.dumps(dict(images=images, type='sequence')) + '\n')
    return out_file
