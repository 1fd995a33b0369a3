"""Tiny datasets in the on-disk formats the shipped configs read, written without downloads.

A GPU check machine has no datasets and no scikit-learn, so the images are random-noise PNGs with
a solid rectangle drawn on each (the detection and segmentation targets). Every writer returns the
folder the config's ``data_root`` should point at.

* :func:`write_imagenet`: ``train/<wnid>/*.png`` + ``meta/train.txt`` (mmpretrain's ``ImageNet``).
* :func:`write_image_text_shards`: webdataset tar shards of ``<key>.png`` + ``<key>.txt``
  (``WebDatasetImageText``, the CLIP configs).
* :func:`write_tokens`: one LVM token shard (``write_token_shard``, the package's own writer).
* :func:`write_latents`: ``latents.npy`` / ``labels.npy`` / ``meta.json`` as
  ``tools/generation/extract_latents.py`` writes them (``LatentDataset``); the moments are random,
  since the check has no VAE weights.
* :func:`write_coco`, :func:`write_ade20k`: COCO instances json with polygon masks, ADE20K
  ``images`` / ``annotations`` folders.
"""
import io
import json
import os
import os.path as osp
import tarfile
from typing import Tuple

import numpy as np
from PIL import Image

WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')


def _image(rng: np.random.Generator, h: int, w: int) -> Tuple[np.ndarray, Tuple[int, ...]]:
    """Noise with one solid rectangle -> (uint8 HxWx3, (x0, y0, x1, y1) of the rectangle)."""
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rw, rh = int(rng.integers(w // 4, w // 2)), int(rng.integers(h // 4, h // 2))
    x0, y0 = int(rng.integers(0, w - rw)), int(rng.integers(0, h - rh))
    img[y0:y0 + rh, x0:x0 + rw] = rng.integers(0, 256, 3, dtype=np.uint8)
    return img, (x0, y0, x0 + rw, y0 + rh)


def write_imagenet(root: str, num: int = 16, size: int = 72, num_classes: int = 10,
                   seed: int = 0) -> str:
    """``num`` square PNGs of ``size`` px in ``num_classes`` class folders, ImageNet layout."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(num):
        label = i % num_classes
        rel = f'n{label:08d}/{i:05d}.png'
        os.makedirs(osp.join(root, 'train', f'n{label:08d}'), exist_ok=True)
        Image.fromarray(_image(rng, size, size)[0]).save(osp.join(root, 'train', rel))
        lines.append(f'{rel} {label}\n')
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    with open(osp.join(root, 'meta', 'train.txt'), 'w') as f:
        f.writelines(lines)
    return root


def write_image_text_shards(root: str, num: int = 16, size: int = 72, shards: int = 2,
                            seed: int = 0) -> str:
    """``train-0000{0..shards-1}.tar``: PNG + caption pairs (captions name a number)."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for shard in range(shards):
        with tarfile.open(osp.join(root, f'train-{shard:05d}.tar'), 'w') as tar:
            for i in range(shard, num, shards):
                buf = io.BytesIO()
                Image.fromarray(_image(rng, size, size)[0]).save(buf, format='PNG')
                caption = f'a photo of the number {WORDS[i % 10]}.'.encode()
                for ext, payload in (('png', buf.getvalue()), ('txt', caption)):
                    info = tarfile.TarInfo(f'{i:06d}.{ext}')
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    return root


def write_tokens(root: str, num_sentences: int = 32, images: int = 4,
                 tokens_per_image: int = 16, seed: int = 0) -> str:
    """A token shard of random codes in the LVM configs' id layout (8192 codes, their BOS/EOS/PAD
    and vocabulary), written with :func:`visionllama_mm.datasets.write_token_shard`."""
    from visionllama_mm.datasets import write_token_shard
    rng = np.random.default_rng(seed)
    if not osp.isfile(osp.join(root, 'meta.json')):
        write_token_shard(root, (rng.integers(0, 8192, images * tokens_per_image)
                                 for _ in range(num_sentences)),
                          tokens_per_image=tokens_per_image, tokenizer='random codes')
    return root


def write_latents(root: str, num: int = 16, channels: int = 4, size: int = 8,
                  num_classes: int = 10, seed: int = 0) -> str:
    """Random VAE moments (mean, log-variance) of ``num`` images, float16, one view."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    moments = rng.standard_normal((1, num, 2 * channels, size, size)).astype(np.float16)
    moments[:, :, channels:] = -2.0  # log-variance: posterior std e^-1
    np.save(osp.join(root, 'latents.npy'), moments)
    np.save(osp.join(root, 'labels.npy'), np.arange(num, dtype=np.int64) % num_classes)
    meta = dict(count=num, views=1, shape=[2 * channels, size, size], dtype='float16',
                scale=0.18215, vae='random moments (no VAE)', vae_sha256='0' * 16,
                image_size=[8 * size, 8 * size], source=dict(writer='tools/gpu_check'),
                classes=None, num_classes=num_classes, complete=True)
    with open(osp.join(root, 'meta.json'), 'w') as f:
        json.dump(meta, f)
    return root


def write_coco(root: str, num: int = 2, size=(96, 128), seed: int = 0) -> str:
    """``train2017`` / ``val2017`` JPEGs and ``annotations/instances_*.json``: one rectangle per
    image (polygon mask), categories rectangle / disc / triangle as the test fixtures name them."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    categories = [dict(id=i + 1, name=n, supercategory='shape')
                  for i, n in enumerate(('rectangle', 'disc', 'triangle'))]
    for split in ('train2017', 'val2017'):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(num):
            img, (x0, y0, x1, y1) = _image(rng, *size)
            name = f'{i:012d}.jpg'
            Image.fromarray(img).save(osp.join(root, split, name), quality=95)
            images.append(dict(id=i + 1, file_name=name, height=size[0], width=size[1]))
            annotations.append(dict(
                id=i + 1, image_id=i + 1, category_id=1, iscrowd=0,
                bbox=[x0, y0, x1 - x0, y1 - y0], area=float((x1 - x0) * (y1 - y0)),
                segmentation=[[x0, y0, x1, y0, x1, y1, x0, y1]]))
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return root


def write_ade20k(root: str, num: int = 2, size=(96, 128), seed: int = 0) -> str:
    """``images/{training,validation}/*.jpg`` and ``annotations/.../*.png`` (label 1 = background,
    2 = the rectangle; 0 is ignored by the configs' ``reduce_zero_label``)."""
    rng = np.random.default_rng(seed)
    for split in ('training', 'validation'):
        os.makedirs(osp.join(root, 'images', split), exist_ok=True)
        os.makedirs(osp.join(root, 'annotations', split), exist_ok=True)
        for i in range(num):
            img, (x0, y0, x1, y1) = _image(rng, *size)
            labels = np.ones(size, np.uint8)
            labels[y0:y1, x0:x1] = 2
            name = f'ADE_{split[:5]}_{i:08d}'
            Image.fromarray(img).save(osp.join(root, 'images', split, name + '.jpg'), quality=95)
            Image.fromarray(labels).save(osp.join(root, 'annotations', split, name + '.png'))
    return root
