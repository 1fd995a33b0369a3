"""Encode an image dataset once with the frozen SD VAE, for latent diffusion training (DiT / SiT).

    python tools/generation/extract_latents.py CONFIG OUT_DIR [--split train|val]
        [--batch-size 32] [--num-workers 2] [--hflip] [--vae PATH] [--device cuda|cpu]
        [--max-samples N] [--overwrite] [--cfg-options k=v ...]

The images are those of ``cfg.{split}_dataloader.dataset``, in order. Its pipeline is made
deterministic: random flips and photometric augmentations are removed (``--hflip`` stores the
flipped image as well, and ``LatentDataset`` picks one of the two per item), random crops or
resizes are refused (removing them would change the image size; use e.g. ``ResizeEdge`` +
``CenterCrop``). The images are mapped to [-1, 1] by the model's data preprocessor
(``cfg.model.data_preprocessor``, default ``GenerationDataPreprocessor``: ``x / 127.5 - 1``),
exactly as when the VAE encodes on the fly in training, and encoded by ``cfg.model.vae`` (its
``path`` replaced by ``--vae``). OUT_DIR gets ``latents.npy`` (float16 moments, (views, N, 2C,
h, w)), ``labels.npy`` and ``meta.json``: the layout ``LatentDataset`` reads (see
``visionllama_mm/datasets/latents.py``).

Resumable: ``meta.json`` (``complete: false``) and the two arrays are created first, then the
arrays are filled batch by batch in place (memory-mapped) and ``progress.json`` records how many
images are done after each batch. Run the same command again after an interruption (or after
``--max-samples N``, which stops after N more images on purpose) and it continues where it stopped;
the finished files are the same as those of an uninterrupted run. At the end ``meta.json`` gets
``complete: true`` and ``progress.json`` is removed.

``meta.json`` is also the run record: the dataset (type, split, ``data_root``, ``ann_file``,
number of images and a fingerprint of the first and last sample paths and labels), a hash of the
resolved dataset and preprocessor config, the VAE's weights checksum and scale, the image size
and ``--hflip``. A run into a folder whose record differs -- interrupted or complete -- is refused
with one error naming every differing field (then -> now); the paths of the config and of the VAE
may differ. ``--overwrite`` deletes the tool's files in OUT_DIR (``meta.json``, the arrays,
``progress.json``; nothing else) and starts over.
"""
import argparse
import copy
import os
import os.path as osp
import re
import sys

# random geometric transforms change the image size when removed: refused, not removed
_RANDOM_GEOMETRY = ('Crop', 'Resize', 'Pad', 'Translate')
_RANDOM_WRAPPERS = ('RandomApply', 'RandomChoice')
_RANDOM_PHOTOMETRIC = ('ColorJitter', 'RandAugment', 'AutoAugment', 'GaussianBlur', 'Lighting')
_DEVICE = re.compile(r'^(cpu|cuda(:\d+)?)$')
PROGRESS_FILE = 'progress.json'
# fields of meta.json that may change between runs into one folder (paths, the completion flag)
_INFORMATIVE = ('complete', 'vae', 'source.config')


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Encode an image dataset into SD VAE moments')
    p.add_argument('config', help='a generation config (model.vae, {split}_dataloader)')
    p.add_argument('out_dir', help='folder to write (LatentDataset layout)')
    p.add_argument('--split', default='train', choices=['train', 'val'],
                   help='which {split}_dataloader.dataset to encode')
    p.add_argument('--batch-size', type=int, default=32, help='images per VAE call')
    p.add_argument('--num-workers', type=int, default=2, help='image-loading processes')
    p.add_argument('--hflip', action='store_true',
                   help='also store the horizontally flipped images (view 1)')
    p.add_argument('--vae', metavar='PATH', help='VAE weights instead of model.vae.path')
    p.add_argument('--device', default=None, help='default: cuda if available, else cpu')
    p.add_argument('--max-samples', type=int, default=None,
                   help='encode at most this many more images, then stop (resume later)')
    p.add_argument('--overwrite', action='store_true',
                   help='delete the latents already in OUT_DIR (of any run) and start over')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, e.g. train_dataloader.dataset.data_root=...')
    args = p.parse_args(argv)
    if not osp.isfile(args.config):
        p.error(f'config {args.config} does not exist')
    if osp.exists(args.out_dir) and not osp.isdir(args.out_dir):
        p.error(f'OUT_DIR {args.out_dir} is a file, not a folder')
    if args.device is not None and not _DEVICE.match(args.device):
        p.error(f'--device must be cpu, cuda or cuda:N, got {args.device!r}')
    if args.batch_size < 1:
        p.error('--batch-size must be >= 1')
    if args.num_workers < 0:
        p.error('--num-workers must be >= 0')
    if args.max_samples is not None and args.max_samples < 1:
        p.error('--max-samples must be >= 1')
    return args


def _type_name(transform) -> str:
    kind = transform['type']
    return kind.__name__ if isinstance(kind, type) else str(kind).split('.')[-1]


def deterministic_pipeline(dataset_cfg: dict, where: str) -> list:
    """Remove the random flips / photometric transforms from the pipeline of ``dataset_cfg`` (or
    of the dataset it wraps) in place; returns their names. Random geometry is refused."""
    cfg = dataset_cfg
    while 'pipeline' not in cfg and isinstance(cfg.get('dataset'), dict):
        cfg = cfg['dataset']  # dataset wrappers (RepeatDataset, ...)
    if 'pipeline' not in cfg:
        raise SystemExit(f'{where}: the dataset config has no pipeline.')
    kept, removed = [], []
    for transform in cfg['pipeline']:
        name = _type_name(transform)
        if 'Random' not in name and name not in _RANDOM_PHOTOMETRIC:
            kept.append(transform)
        elif name in _RANDOM_WRAPPERS or any(g in name for g in _RANDOM_GEOMETRY):
            raise SystemExit(f'{where}: the pipeline has the random transform {name}, which '
                             'changes what or how large the image is; latents must be extracted '
                             'deterministically. Use a deterministic pipeline for extraction '
                             '(e.g. ResizeEdge + CenterCrop), via --cfg-options or a config.')
        else:
            removed.append(name)
    cfg['pipeline'] = kept
    return removed


def _without_data_root(cfg):
    """``cfg`` without its ``data_root`` keys (compared on their own, as absolute paths)."""
    if isinstance(cfg, dict):
        return {k: _without_data_root(v) for k, v in cfg.items() if k != 'data_root'}
    if isinstance(cfg, (list, tuple)):
        return [_without_data_root(v) for v in cfg]
    return cfg


def dataset_identity(dataset, n: int, ends: int = 8) -> dict:
    """``data_root`` (absolute), ``ann_file`` and a fingerprint of the sample list: the paths
    (relative to ``data_root``) and labels of the first and last ``ends`` samples, and ``n``."""
    from visionllama_mm.utils import json_fingerprint
    inner = dataset
    while not hasattr(inner, 'data_root') and hasattr(inner, 'dataset'):
        inner = inner.dataset  # dataset wrappers
    root = getattr(inner, 'data_root', None) or ''
    picked = None
    if hasattr(dataset, 'get_data_info'):
        picked = []
        for i in (range(n) if n <= 2 * ends else [*range(ends), *range(n - ends, n)]):
            info = dataset.get_data_info(i)
            path = info.get('img_path') or info.get('filename')
            if isinstance(path, str) and root and path.startswith(str(root)):
                path = osp.relpath(path, root)
            label = info.get('gt_label')
            picked.append([path, None if label is None else str(label)])
    ann_file = getattr(inner, 'ann_file', None)
    if ann_file and root and str(ann_file).startswith(str(root)):
        ann_file = osp.relpath(ann_file, root)
    return dict(data_root=osp.abspath(root) if root else None,
                ann_file=str(ann_file) if ann_file else None,
                samples=f'{n}:{json_fingerprint(picked)}' if picked is not None else None)


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmengine.utils import ProgressBar
    from mmpretrain.registry import DATASETS, MODELS
    from torch.utils.data import DataLoader, Subset

    import visionllama_mm  # noqa: F401 (registers the package's classes)
    from visionllama_mm.datasets.latents import LABELS_FILE, LATENTS_FILE, META_FILE
    from visionllama_mm.datasets.run_record import (RunRecordMismatch, check_record,
                                                    foreign_entries, read_record, remove_outputs)
    from visionllama_mm.models.diffusion import vae as _vae  # noqa: F401 (StableDiffusionVAE)
    from visionllama_mm.utils import json_fingerprint, weights_checksum, write_json

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope('mmpretrain')
    where = f'{args.config} ({args.split}_dataloader.dataset)'

    loader_cfg = cfg.get(f'{args.split}_dataloader') or {}
    if not loader_cfg.get('dataset'):
        raise SystemExit(f'{args.config} has no {args.split}_dataloader.dataset to encode.')
    dataset_cfg = copy.deepcopy(loader_cfg['dataset'].to_dict()
                                if hasattr(loader_cfg['dataset'], 'to_dict')
                                else loader_cfg['dataset'])
    removed = deterministic_pipeline(dataset_cfg, where)

    model_cfg = cfg.get('model') or {}
    vae_cfg = model_cfg.get('vae')
    vae_cfg = dict(vae_cfg) if vae_cfg else None
    if args.vae:
        vae_cfg = dict(vae_cfg or dict(type='StableDiffusionVAE'), path=args.vae)
    if not vae_cfg or not vae_cfg.get('path'):
        raise SystemExit(f'{args.config}: no VAE weights: set model.vae (with a path) or pass '
                         '--vae PATH (random weights would make the latents useless).')
    preprocessor_cfg = model_cfg.get('data_preprocessor') or cfg.get('data_preprocessor') or \
        dict(type='GenerationDataPreprocessor')

    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise SystemExit(f'--device {device}: no CUDA device is available; use --device cpu.')
    vae = MODELS.build(vae_cfg).to(device)
    preprocessor = MODELS.build(preprocessor_cfg)
    factor, channels = vae.downsample_factor, 2 * vae.latent_channels
    dataset = DATASETS.build(dataset_cfg)
    n = len(dataset)
    if n == 0:
        raise SystemExit(f'{where}: the dataset is empty.')
    height, width = dataset[0]['inputs'].shape[-2:]
    if height % factor or width % factor:
        raise SystemExit(f'{where}: the images are {height}x{width}, not divisible by the VAE\'s '
                         f'downsampling factor {factor}; crop or resize them in the pipeline.')
    classes = dataset.metainfo.get('classes') if hasattr(dataset, 'metainfo') else None
    classes = list(classes) if classes else None
    views = 2 if args.hflip else 1
    shape = (channels, height // factor, width // factor)
    meta = dict(count=n, views=views, shape=list(shape), dtype='float16', scale=vae.scale,
                vae=vae_cfg['path'], vae_sha256=weights_checksum(vae),
                image_size=[int(height), int(width)],
                source=dict(config=args.config, split=args.split,
                            dataset=_type_name(dataset_cfg), removed_transforms=removed,
                            config_sha256=json_fingerprint(_without_data_root(dict(
                                dataset=dataset_cfg, data_preprocessor=preprocessor_cfg))),
                            **dataset_identity(dataset, n)),
                classes=classes, num_classes=len(classes) if classes else None, complete=False)

    out = args.out_dir
    meta_path, progress_path = osp.join(out, META_FILE), osp.join(out, PROGRESS_FILE)
    latents_path, labels_path = osp.join(out, LATENTS_FILE), osp.join(out, LABELS_FILE)
    own = (META_FILE, LATENTS_FILE, LABELS_FILE, PROGRESS_FILE)
    foreign = foreign_entries(out, own)
    if foreign and (args.overwrite or not osp.isfile(meta_path)):
        raise SystemExit(f'{out} is not empty and holds files this tool does not write '
                         f'({", ".join(foreign[:5])}): it is not a latent folder written by this '
                         'tool (--overwrite deletes only its own files). Use a new or empty '
                         'OUT_DIR.')
    if args.overwrite:
        deleted = remove_outputs(out, own)
        if deleted:
            print(f'--overwrite: deleted {", ".join(deleted)} from {out}.')
    done = 0
    try:
        old = read_record(meta_path)
        check_record(old, meta, f'{out} ({META_FILE})', what='extracted',
                     ignore=_INFORMATIVE)
    except RunRecordMismatch as err:
        raise SystemExit(str(err)) from None
    if old is not None:
        if old.get('complete'):
            print(f'{out} already holds all {n} latents of this dataset; nothing to do.')
            return
        if osp.isfile(progress_path) and osp.isfile(latents_path) and osp.isfile(labels_path):
            try:
                done = (read_record(progress_path) or {}).get('done')
            except RunRecordMismatch as err:
                raise SystemExit(str(err)) from None
            if isinstance(done, bool) or not isinstance(done, int) or not 0 <= done <= n:
                raise SystemExit(f'{progress_path}: "done" must be an int in [0, {n}], got '
                                 f'{done!r}; pass --overwrite to start over.')
    os.makedirs(out, exist_ok=True)
    if done == 0:  # a fresh start: the meta first (complete: false), then the arrays, once
        write_json(meta_path, meta, fsync=True)
        np.lib.format.open_memmap(latents_path, mode='w+', dtype=np.float16,
                                  shape=(views, n, *shape)).flush()
        np.lib.format.open_memmap(labels_path, mode='w+', dtype=np.int64, shape=(n, )).flush()
        write_json(progress_path, dict(done=0), fsync=True)
    latents = np.load(latents_path, mmap_mode='r+', allow_pickle=False)
    labels = np.load(labels_path, mmap_mode='r+', allow_pickle=False)

    stop = n if args.max_samples is None else min(n, done + args.max_samples)
    print(f'{n} images ({height}x{width}) -> moments {shape}, {views} view(s); {done} done '
          f'before, {stop - done} to encode now on {device}' +
          (f'; removed from the pipeline: {", ".join(removed)}' if removed else '') + '.')
    loader = DataLoader(Subset(dataset, range(done, stop)), batch_size=args.batch_size,
                        shuffle=False, num_workers=args.num_workers, collate_fn=pseudo_collate)
    bar = ProgressBar(stop - done)
    for batch in loader:
        for k, img in enumerate(batch['inputs']):
            if tuple(img.shape[-2:]) != (height, width):
                raise SystemExit(f'{where}: image {done + k} is {tuple(img.shape[-2:])}, the '
                                 f'first was {(int(height), int(width))}; crop or resize the '
                                 'images to one size in the pipeline.')
        ys = []
        for k, sample in enumerate(batch['data_samples']):
            if 'gt_label' not in sample:
                raise SystemExit(f'{where}: image {done + k} has no gt_label; class-conditional '
                                 'generation needs the labels.')
            ys.append(int(sample.gt_label.reshape(-1)[0]))
        x = preprocessor(dict(inputs=batch['inputs'], data_samples=batch['data_samples']),
                         training=False)['inputs'].to(device)
        b = x.shape[0]
        for view in range(views):
            moments = vae.encode_moments(x.flip(-1) if view else x).cpu().numpy()
            half = moments.astype(np.float16)
            if not np.isfinite(half).all():
                raise SystemExit(f'{where}: images {done}..{done + b - 1} give moments outside '
                                 'the float16 range.')
            latents[view, done:done + b] = half
        labels[done:done + b] = ys
        latents.flush()
        labels.flush()
        done += b
        write_json(progress_path, dict(done=done), fsync=True)
        bar.update(b)
    print()
    del latents, labels
    if done < n:
        print(f'stopped after --max-samples: {done} of {n} images done; run the same command '
              'again to continue.')
        return
    write_json(meta_path, dict(meta, complete=True), fsync=True)
    os.remove(progress_path)
    print(f'wrote {n} latents ({views} view(s)) to {osp.abspath(out)}')


if __name__ == '__main__':
    main(sys.argv[1:])
