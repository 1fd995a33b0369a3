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
    log = run_tool(argv(full), fresh=True)  # a new interpreter, as from a shell
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
    assert proc.returncode != 0
    assert f'{part} (meta.json) was extracted for other inputs: views: 2 (then) -> 1 (now)' \
        in proc.stdout and 'pass --overwrite to start over, or use another folder' in proc.stdout

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
    assert f'{tmp_path / "d"} is not empty and holds files this tool does not write ' \
        '(mine.txt)' in fails(config, tmp_path / 'd')
    assert 'has no val_dataloader.dataset' in fails(config, tmp_path / 'e', '--split', 'val')


def load_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location('extract_latents', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def other_digits(digits_root, root):
    """Another CustomDataset of COUNT digits (training images COUNT..2*COUNT-1 of the first)."""
    import shutil
    lines = open(osp.join(digits_root, 'meta', 'train.txt')).read().split('\n')[COUNT:2 * COUNT]
    for line in lines:
        rel = line.split()[0]
        (root / osp.dirname(rel)).mkdir(parents=True, exist_ok=True)
        shutil.copy(osp.join(digits_root, rel), root / rel)
    (root / 'meta').mkdir()
    (root / 'meta' / 'train.txt').write_text('\n'.join(lines) + '\n')
    return str(root)


def test_resume_never_mixes_two_datasets(setup, tmp_path, capsys):
    """A folder that a run over another dataset of the same size left incomplete (or complete)
    is refused, naming the dataset fields; --overwrite starts over; only the tool's files go."""
    root, config, digits_root = setup
    other = write_config(tmp_path / 'other.py', other_digits(digits_root, tmp_path / 'digits2'),
                         str(root / 'vae'))
    tool, out = load_tool(), tmp_path / 'out'

    def argv(cfg, *extra):
        return [cfg, str(out), '--batch-size', '4', '--num-workers', '0', '--device', 'cpu',
                *extra]

    tool.main(argv(config, '--max-samples', '4'))  # the first dataset, left incomplete
    for finished in (False, True):
        with pytest.raises(SystemExit) as err:
            tool.main(argv(other))
        msg = str(err.value)
        assert msg.startswith(f'{out} (meta.json) was extracted for other inputs: ')
        assert f"source.data_root: '{digits_root}' (then) -> '{tmp_path / 'digits2'}' (now)" \
            in msg and 'source.samples: ' in msg and 'source.config' not in msg
        assert msg.endswith('Refusing to mix or reuse it; pass --overwrite to start over, or '
                            'use another folder.')
        if not finished:
            # the same images through another (size-preserving) pipeline: the config hash
            resized = write_config(tmp_path / 'resized.py', digits_root, str(root / 'vae'),
                                   [dict(type='ResizeEdge', scale=32)])
            with pytest.raises(SystemExit, match=r'other inputs: source.config_sha256: '
                                                 r"'\w+' \(then\) -> '\w+' \(now\)\. Refusing"):
                tool.main(argv(resized))
            tool.main(argv(config))  # the same dataset resumes
    first = np.load(out / 'latents.npy')
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['complete'] and meta['source']['data_root'] == digits_root
    assert meta['source']['ann_file'] == 'meta/train.txt'
    assert meta['source']['samples'].startswith(f'{COUNT}:')

    (out / 'notes.txt').write_text('mine')
    with pytest.raises(SystemExit, match=r'holds files this tool does not write \(notes.txt\)'):
        tool.main(argv(other, '--overwrite'))
    assert (out / 'latents.npy').exists()
    (out / 'notes.txt').unlink()
    capsys.readouterr()
    tool.main(argv(other, '--overwrite'))
    log = capsys.readouterr().out
    assert f'--overwrite: deleted meta.json, latents.npy, labels.npy from {out}.' in log
    assert '0 done before, 10 to encode now' in log
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['complete'] and meta['source']['data_root'] == str(tmp_path / 'digits2')
    latents = np.load(out / 'latents.npy')
    assert all(not np.allclose(latents[0, i], first[0, i], atol=1e-2) for i in range(COUNT))
    assert len(LatentDataset(str(out))) == COUNT


def test_cli_checks(setup, tmp_path, capsys):
    root, config, _ = setup
    tool = load_tool()
    for argv, message in (([config, 'o', '--batch-size', '0'], '--batch-size must be >= 1'),
                          ([config, 'o', '--num-workers', '-1'], '--num-workers must be >= 0'),
                          ([str(tmp_path / 'no.py'), 'o'], f'config {tmp_path / "no.py"} does '
                           'not exist'),
                          ([config, config], f'OUT_DIR {config} is a file, not a folder'),
                          ([config, 'o', '--device', 'gpu'], "--device must be cpu, cuda or "
                           "cuda:N, got 'gpu'")):
        with pytest.raises(SystemExit):
            tool.parse_args(argv)
        assert message in capsys.readouterr().err
