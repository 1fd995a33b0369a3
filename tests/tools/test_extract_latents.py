"""tools/generation/extract_latents.py: digits -> SD-VAE moments with a tiny saved VAE.

The stored moments are the VAE's moments of the images (and of their mirror images with --hflip),
the labels are the dataset's, a run stopped twice (once mid-batch) and resumed writes the same
bytes as an uninterrupted run, LatentDataset reads the folder through mmengine's Runner, and
changed settings, random crops and a missing VAE are refused."""
import json
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from visionllama_mm.datasets.latents import LatentDataset
from visionllama_mm.models.diffusion.vae import StableDiffusionVAE

from ..conftest import REPO, run_python, run_tool

TOOL = osp.join(REPO, 'tools', 'generation', 'extract_latents.py')
TINY = dict(block_out_channels=(32, 32), down_block_types=('DownEncoderBlock2D', ) * 2,
            up_block_types=('UpDecoderBlock2D', ) * 2, norm_num_groups=8, layers_per_block=1,
            latent_channels=4, sample_size=32)
COUNT = 10


def write_config(path, data_root, vae, pipeline_extra=(), vae_cfg=True):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='CenterCrop', crop_size=32),
                *pipeline_extra, dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                dict(type='ColorJitter', brightness=0.2), dict(type='PackInputs')]
    model = dict(type='ClassConditionalDiffusion',
                 vae=dict(type='StableDiffusionVAE', path=vae, scale=0.5) if vae_cfg else None)
    path.write_text(
        "custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)\n"
        f'model = {model!r}\n'
        f'train_dataloader = dict(batch_size=8, dataset=dict(type="CustomDataset", '
        f'data_root={data_root!r}, ann_file="meta/train.txt", indices={COUNT}, '
        f'metainfo=dict(classes=[str(i) for i in range(10)]), pipeline={pipeline!r}))\n')
    return str(path)


@pytest.fixture(scope='module')
def setup(tmp_path_factory, digits_root):
    root = tmp_path_factory.mktemp('extract')
    torch.manual_seed(0)
    ref = AutoencoderKL(**TINY)
    with torch.no_grad():
        ref.quant_conv.bias[4:] = -1.5  # posterior variances well inside float16
    ref.save_pretrained(str(root / 'vae'))
    config = write_config(root / 'cfg.py', digits_root, str(root / 'vae'))
    return root, config, digits_root


def images(digits_root):
    """The first COUNT training digits as the tool sees them: (N, 3, 32, 32) in [-1, 1]."""
    from PIL import Image
    lines = open(osp.join(digits_root, 'meta', 'train.txt')).read().split('\n')[:COUNT]
    imgs, labels = [], []
    for line in lines:
        rel, label = line.split()
        gray = np.asarray(Image.open(osp.join(digits_root, rel)).convert('L'), np.float32)
        imgs.append(np.repeat(gray[None], 3, 0))
        labels.append(int(label))
    return torch.from_numpy(np.stack(imgs)) / 127.5 - 1, labels


def files(out):
    return {name: (out / name).read_bytes() for name in ('latents.npy', 'labels.npy', 'meta.json')}


def test_extract_matches_the_vae_resumes_and_loads(setup, tmp_path):
    root, config, digits_root = setup

    def argv(out, *extra):
        return [sys.executable, TOOL, config, str(out), '--batch-size', '4', '--num-workers', '0',
                '--hflip', '--device', 'cpu', *extra]

    full = tmp_path / 'full'
    log = run_tool(argv(full))
    assert 'removed from the pipeline: RandomFlip, ColorJitter' in log
    assert f'wrote {COUNT} latents (2 view(s)) to {full}' in log
    assert sorted(p.name for p in full.iterdir()) == ['labels.npy', 'latents.npy', 'meta.json']

    latents = np.load(full / 'latents.npy')
    assert latents.dtype == np.float16 and latents.shape == (2, COUNT, 8, 16, 16)
    x, labels = images(digits_root)
    assert np.load(full / 'labels.npy').tolist() == labels and len(set(labels)) > 3
    vae = StableDiffusionVAE(str(root / 'vae'))
    for view, imgs in ((0, x), (1, x.flip(-1))):
        expected = vae.encode_moments(imgs).numpy()
        # the VAE's float32 moments rounded to float16 (relative half ulp 4.9e-4)
        np.testing.assert_allclose(latents[view].astype(np.float32), expected, rtol=1e-3,
                                   atol=1e-4)
        assert np.abs(expected).max() > 0.5 and expected[:, 4:].mean() < -1  # real values
    assert not np.allclose(latents[0], latents[1], atol=1e-2)  # the digits are not symmetric
    meta = json.loads((full / 'meta.json').read_text())
    assert meta['complete'] and meta['count'] == COUNT and meta['views'] == 2
    assert meta['shape'] == [8, 16, 16] and meta['image_size'] == [32, 32]
    assert meta['scale'] == 0.5 and meta['vae'] == str(root / 'vae')
    assert meta['classes'] == [str(i) for i in range(10)] and meta['num_classes'] == 10
    assert meta['source']['dataset'] == 'CustomDataset'

    # stopped after one batch, then mid-batch (4 + 3 images), then resumed: identical files
    part = tmp_path / 'part'
    log = run_tool(argv(part, '--max-samples', '4'))
    assert f'4 of {COUNT} images done' in log
    assert json.loads((part / 'progress.json').read_text()) == dict(done=4)
    assert json.loads((part / 'meta.json').read_text())['complete'] is False
    with pytest.raises(ValueError, match='extraction is incomplete'):
        LatentDataset(str(part))
    log = run_tool(argv(part, '--max-samples', '3'))
    assert '4 done before, 3 to encode now' in log and f'7 of {COUNT} images done' in log
    log = run_tool(argv(part))
    assert '7 done before, 3 to encode now' in log and not (part / 'progress.json').exists()
    assert files(part) == files(full)
    assert 'nothing to do' in run_tool(argv(part))

    # changed settings are refused on resume (here: no flipped view)
    (part / 'meta.json').write_text(json.dumps(dict(meta, complete=False)))
    proc = run_python(argv(part)[:-3] + ['--device', 'cpu'])
    assert proc.returncode != 0 and "other settings {'views': (2, 1)" in proc.stdout

    # the folder through mmengine's Runner: each item one of its two views, labels in order
    init_default_scope('mmpretrain')
    loader = Runner.build_dataloader(dict(
        batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='pseudo_collate'),
        dataset=dict(type='LatentDataset', data_root=str(full))), seed=0)
    items = [(x, s) for b in loader for x, s in zip(b['inputs'], b['data_samples'])]
    assert [int(s.gt_label) for _, s in items] == labels
    views = [next(v for v in (0, 1) if np.array_equal(x.numpy(), latents[v, i]))
             for i, (x, _) in enumerate(items)]
    assert 0 < sum(views) < COUNT
    assert loader.dataset.metainfo['classes'] == tuple(str(i) for i in range(10))


def test_refusals(setup, tmp_path):
    root, config, digits_root = setup

    def fails(cfg, out, *extra):
        proc = run_python([sys.executable, TOOL, cfg, str(out), '--num-workers', '0', *extra])
        assert proc.returncode != 0, proc.stdout
        return proc.stdout

    crop = write_config(tmp_path / 'crop.py', digits_root, str(root / 'vae'),
                        [dict(type='RandomResizedCrop', scale=32)])
    assert 'random transform RandomResizedCrop' in fails(crop, tmp_path / 'a')
    novae = write_config(tmp_path / 'novae.py', digits_root, None, vae_cfg=False)
    assert 'no VAE weights' in fails(novae, tmp_path / 'b')
    msg = fails(novae, tmp_path / 'c', '--vae', str(tmp_path / 'nowhere'))
    assert 'huggingface-cli download' in msg and 'nowhere' in msg
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd' / 'mine.txt').write_text('x')
    assert 'is not empty and has no meta.json' in fails(config, tmp_path / 'd')
    assert 'has no val_dataloader.dataset' in fails(config, tmp_path / 'e', '--split', 'val')
