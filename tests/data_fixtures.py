"""Tiny datasets in the real on-disk formats, with real-looking content and exact masks.

Backgrounds are crops of scikit-learn's sample photographs (china.jpg, flower.jpg); on each crop a
few solid shapes (rectangles, discs, triangles) are drawn with exactly known masks.

* ADE20K layout: ``images/{training,validation}/*.jpg`` and ``annotations/{...}/*.png`` with labels
  0-150, 0 = "other" (ignored by ``reduce_zero_label``), 1 = the photo background ("wall"),
  2/3/4 = rectangle/disc/triangle.
* COCO layout: ``{train,val}2017/*.jpg`` and ``annotations/instances_{train,val}2017.json`` with
  polygon segmentations for rectangles/triangles and RLE for discs.
"""
import json
import os
import os.path as osp
from typing import List

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ('rectangle', 'disc', 'triangle')
COLOURS = ((230, 40, 40), (40, 90, 230), (250, 220, 30))


def _photos() -> List[np.ndarray]:
    from sklearn.datasets import load_sample_images
    return [np.asarray(img) for img in load_sample_images().images]


# real dataset image sizes (H, W), none a multiple of 16 or 32 in both sides
ADE20K_SIZES = ((512, 683), (375, 500), (683, 512))
COCO_SIZES = ((427, 640), (375, 500), (640, 427))


def make_shapes(num: int, size=(64, 96), seed: int = 0):
    """``num`` samples: (RGB image uint8, semantic label map, instances).

    ``size`` is one (H, W) or a list of them, used in turn. Each instance is
    ``dict(category=int, bbox=[x, y, w, h], polygon=[...] or None, mask=HxW bool)``.
    """
    rng = np.random.RandomState(seed)
    photos = _photos()
    sizes = [size] if isinstance(size[0], int) else list(size)
    samples = []
    for n in range(num):
        H, W = sizes[n % len(sizes)]
        photo = photos[rng.randint(len(photos))]
        if photo.shape[0] <= H or photo.shape[1] <= W:  # upscale the photo to crop from it
            s = max((H + 1) / photo.shape[0], (W + 1) / photo.shape[1])
            photo = np.asarray(Image.fromarray(photo).resize(
                (int(photo.shape[1] * s) + 1, int(photo.shape[0] * s) + 1)))
        y0, x0 = rng.randint(photo.shape[0] - H), rng.randint(photo.shape[1] - W)
        img = Image.fromarray(photo[y0:y0 + H, x0:x0 + W].copy())
        labels = np.ones((H, W), np.uint8)  # 1 = photo background
        instances = []
        for _ in range(rng.randint(1, 4)):
            cat = rng.randint(len(SHAPES))
            w, h = rng.randint(W // 5, W // 2), rng.randint(H // 5, H // 2)
            x, y = rng.randint(0, W - w), rng.randint(0, H - h)
            mask_img = Image.new('L', (W, H), 0)
            draw = ImageDraw.Draw(mask_img)
            polygon = None
            if cat == 0:
                polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
            elif cat == 2:
                polygon = [x + w / 2, y, x + w, y + h, x, y + h]
            if polygon is None:
                draw.ellipse([x, y, x + w - 1, y + h - 1], fill=1)
            else:
                draw.polygon(polygon, fill=1)
            mask = np.asarray(mask_img).astype(bool)
            if mask.sum() < 16:
                continue
            arr = np.asarray(img).copy()
            arr[mask] = COLOURS[cat]
            img = Image.fromarray(arr)
            labels[mask] = 2 + cat
            for other in instances:  # later shapes occlude earlier ones
                other['mask'] &= ~mask
            instances.append(dict(category=cat, polygon=polygon, mask=mask))
        instances = [i for i in instances if i['mask'].sum() >= 16]
        for inst in instances:
            ys, xs = np.nonzero(inst['mask'])
            inst['bbox'] = [float(xs.min()), float(ys.min()),
                            float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
            if inst['polygon'] is not None and inst['mask'].sum() < 0.9 * _poly_area(inst['polygon']):
                inst['polygon'] = None  # occluded: the polygon no longer describes it, use RLE
        samples.append((np.asarray(img), labels, instances))
    return samples


def _poly_area(poly):
    xs, ys = np.array(poly[0::2]), np.array(poly[1::2])
    return 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))


def write_ade20k(root: str, num_train: int = 8, num_val: int = 4, size=(64, 96), seed: int = 0):
    """ADE20K-format folder at ``root``; returns ``root``."""
    for split, num, s in (('training', num_train, seed), ('validation', num_val, seed + 1)):
        os.makedirs(osp.join(root, 'images', split), exist_ok=True)
        os.makedirs(osp.join(root, 'annotations', split), exist_ok=True)
        for i, (img, labels, _) in enumerate(make_shapes(num, size, s)):
            name = f'ADE_{split[:5]}_{i:08d}'
            Image.fromarray(img).save(osp.join(root, 'images', split, name + '.jpg'), quality=95)
            Image.fromarray(labels).save(osp.join(root, 'annotations', split, name + '.png'))
    return root


def write_coco(root: str, num_train: int = 8, num_val: int = 4, size=(64, 96), seed: int = 0):
    """COCO-format folder at ``root`` (instances with polygons and RLE); returns ``root``."""
    from pycocotools import mask as mask_utils
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    categories = [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(SHAPES)]
    for split, num, s in (('train2017', num_train, seed), ('val2017', num_val, seed + 1)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i, (img, _, instances) in enumerate(make_shapes(num, size, s)):
            file_name = f'{i:012d}.jpg'
            Image.fromarray(img).save(osp.join(root, split, file_name), quality=95)
            images.append(dict(id=i + 1, file_name=file_name, height=img.shape[0],
                               width=img.shape[1]))
            for inst in instances:
                if inst['polygon'] is not None:
                    segmentation = [[float(v) for v in inst['polygon']]]
                else:
                    rle = mask_utils.encode(np.asfortranarray(inst['mask'].astype(np.uint8)))
                    segmentation = dict(size=rle['size'], counts=rle['counts'].decode())
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=i + 1, category_id=inst['category'] + 1,
                    bbox=inst['bbox'], area=float(inst['mask'].sum()), iscrowd=0,
                    segmentation=segmentation))
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return root


def write_photo_crops(root: str, num: int = 64, size: int = 96, seed: int = 0) -> str:
    """ImageNet-format crops (``train/photo/*.jpg``, ``size`` x ``size``, and ``meta/train.txt``
    with label 0) of the two sample photographs, for self-supervised pre-training on real
    images."""
    rng = np.random.RandomState(seed)
    photos = _photos()
    folder = osp.join(root, 'train', 'photo')
    os.makedirs(folder, exist_ok=True)
    for i in range(num):
        img = photos[i % len(photos)]
        y = rng.randint(0, img.shape[0] - size)
        x = rng.randint(0, img.shape[1] - size)
        Image.fromarray(img[y:y + size, x:x + size]).save(osp.join(folder, f'{i:04d}.jpg'),
                                                          quality=95)
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    with open(osp.join(root, 'meta', 'train.txt'), 'w') as f:
        f.writelines(f'photo/{i:04d}.jpg 0\n' for i in range(num))
    return root


def _save_rgb(image: np.ndarray, path: str) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).convert('RGB').save(path)


def write_coco_karpathy(root: str, samples, ann_file: str = 'caption_karpathy_test2014.json',
                        ext: str = '.jpg') -> str:
    """COCO-format captions as mmpretrain's ``COCORetrieval`` reads them (OpenMMLab's copy of
    Karpathy's split): ``val2014/COCO_val2014_<id>.<ext>`` and ``annotations/<ann_file>`` with
    ``images`` (``id``, ``file_name``, ``coco_url``, ``height``, ``width``) and ``annotations``
    (``id``, ``image_id``, ``caption``). ``samples``: ``[(RGB uint8 image, [captions])]``. The
    annotations are listed round-robin over the images (caption k of every image, then k + 1), so
    a caption's index is not its image's block of five: COCO's files do not group them by image.
    COCO ids are not indices (image i has id 100 + 7 i)."""
    images, annotations = [], []
    for i, (image, _) in enumerate(samples):
        coco_id = 100 + 7 * i
        name = f'COCO_val2014_{coco_id:012d}{ext}'
        _save_rgb(image, osp.join(root, 'val2014', name))
        images.append(dict(id=coco_id, file_name=name, height=int(image.shape[0]),
                           width=int(image.shape[1]),
                           coco_url=f'http://images.cocodataset.org/val2014/{name}'))
    for k in range(max(len(captions) for _, captions in samples)):
        for i, (_, captions) in enumerate(samples):
            if k < len(captions):
                annotations.append(dict(id=5000 + len(annotations), image_id=images[i]['id'],
                                        caption=captions[k]))
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    with open(osp.join(root, 'annotations', ann_file), 'w') as f:
        json.dump(dict(images=images, annotations=annotations), f)
    return root


def write_flickr30k(root: str, samples, splits=None, ext: str = '.jpg') -> str:
    """Karpathy's ``dataset_flickr30k.json`` as mmpretrain's ``Flickr30kRetrieval`` reads it:
    ``images/<n>.<ext>`` and ``annotations/dataset_flickr30k.json`` with ``images`` (``filename``,
    ``imgid``, ``split``, ``sentids``, ``sentences`` of ``raw`` / ``tokens`` / ``imgid`` /
    ``sentid``) and ``dataset``. ``samples``: ``[(RGB uint8 image, [captions])]``; ``splits``:
    each one's split (default all ``'test'``). Returns ``root``."""
    splits = splits or ['test'] * len(samples)
    images, sentid = [], 0
    for i, ((image, captions), split) in enumerate(zip(samples, splits)):
        name = f'{1000092795 + 11 * i}{ext}'
        _save_rgb(image, osp.join(root, 'images', name))
        sentences = [dict(raw=c, tokens=c.lower().strip('.').split(), imgid=i, sentid=sentid + j)
                     for j, c in enumerate(captions)]
        images.append(dict(filename=name, imgid=i, split=split, sentences=sentences,
                           sentids=[s['sentid'] for s in sentences]))
        sentid += len(captions)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    with open(osp.join(root, 'annotations', 'dataset_flickr30k.json'), 'w') as f:
        json.dump(dict(images=images, dataset='flickr30k'), f)
    return root
