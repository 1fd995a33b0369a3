"""tools/generation/sample.py: a class-per-row grid from a DiT-LLaMA ImageNet config made tiny
(2-block denoiser on the 8x8 latents of a tiny saved VAE, 4 classes).

The grid is the model's own samples for the classes in order (recomputed here), of the expected
size, reproducible for a seed and different for another seed or guidance scale; out-of-range
classes, a checkpoint whose keys do not fit, bad counts and a non-generation config are refused
with messages that say what is wrong."""
import argparse
import os.path as osp
import re
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from PIL import Image

from ..conftest import REPO, run_python
from .test_dit_configs import CONFIGS, IMAGE, save_tiny_vae, tiny_options

TOOL = osp.join(REPO, 'tools', 'generation', 'sample.py')
CONFIG = CONFIGS['dit_llama-xl-p2_8xb32-400k_in1k-256px.py']


def _options(vae):
    keep = ('model.', )  # sample.py reads only the model
    return [o for o in tiny_options(vae) if o.startswith(keep)]


def _cfg(opts):
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', *opts]).cfg_options)
    return cfg


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """The tiny VAE, the options, and a checkpoint of the tiny model with non-zero outputs
    (the official init zeroes the final layer, which would make every class alike)."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    root = tmp_path_factory.mktemp('sample')
    opts = _options(save_tiny_vae(root / 'vae'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(_cfg(opts).model)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), root / 'ckpt.pth')
    return root, opts, model.eval()


def _sample(setup, out, *args, ckpt=None, fresh=False):
    root, opts, _ = setup
    return run_python([sys.executable, TOOL, CONFIG, str(ckpt or root / 'ckpt.pth'), *args,
                       '--steps', '4', '--device', 'cpu', '--out', str(out),
                       '--cfg-options', *opts], fresh=fresh)


def test_grid(setup, tmp_path):
    _, _, model = setup
    proc = _sample(setup, tmp_path / 'a.png', '--classes', '1', '2', '3', '--per-class', '2',
                   '--seed', '5', fresh=True)  # a new interpreter, as from a shell
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f'6 samples of classes [1, 2, 3] (cfg scale 1.5) -> {tmp_path / "a.png"}' in \
        proc.stdout
    grid = np.asarray(Image.open(tmp_path / 'a.png').convert('RGB'))
    # 3 rows (one per class) x 2 columns of 32 px images with 2 px padding around each
    assert grid.shape == (3 * (IMAGE + 2) + 2, 2 * (IMAGE + 2) + 2, 3)

    # the cells are the model's samples of classes 1, 1, 2, 2, 3, 3 for seed 5 with guidance 1.5
    # and 4 DDPM steps (the config's 250 replaced by --steps), as torchvision's save_image rounds
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = _cfg(setup[1])
    cfg.model.objective.sampling_steps = 4
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ref = MODELS.build(cfg.model)
    ref.load_state_dict(model.state_dict())
    images = ref.eval().generate(torch.tensor([1, 1, 2, 2, 3, 3]), seed=5)
    images = ((images.clamp(-1, 1) + 1) / 2 * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    cells = [grid[2 + r * (IMAGE + 2):2 + r * (IMAGE + 2) + IMAGE,
                  2 + c * (IMAGE + 2):2 + c * (IMAGE + 2) + IMAGE] for r in range(3)
             for c in range(2)]
    for cell, img in zip(cells, images):
        diff = np.abs(cell.astype(int) - img.permute(1, 2, 0).numpy().astype(int))
        assert diff.max() <= 1  # float rounding across thread counts
    assert np.abs(cells[0].astype(int) - cells[2].astype(int)).max() > 10  # classes differ

    # reproducible for a seed; another seed or guidance scale gives other images
    assert _sample(setup, tmp_path / 'b.png', '--classes', '1', '2', '3', '--per-class', '2',
                   '--seed', '5').returncode == 0
    assert (tmp_path / 'a.png').read_bytes() == (tmp_path / 'b.png').read_bytes()
    for extra, name in ((['--seed', '6'], 'c.png'),
                        (['--seed', '5', '--cfg-scale', '1'], 'd.png')):
        proc = _sample(setup, tmp_path / name, '--classes', '1', '2', '3', '--per-class', '2',
                       *extra)
        assert proc.returncode == 0, proc.stdout[-3000:]
        diff = np.abs(np.asarray(Image.open(tmp_path / name).convert('RGB')).astype(int) - grid)
        # another seed: other images; no guidance: a small change (the tiny model's classes
        # differ little) on many pixels
        assert diff.max() > 10 if name == 'c.png' else (diff > 0).sum() > 500
    assert '(cfg scale 1.0)' in proc.stdout
    # --nrow: all six in one row
    proc = _sample(setup, tmp_path / 'e.png', '--classes', '1', '2', '3', '--per-class', '2',
                   '--nrow', '6')
    assert proc.returncode == 0 and Image.open(tmp_path / 'e.png').size == (6 * 34 + 2, 36)


def test_refusals(setup, tmp_path):
    root, opts, model = setup

    def fails(*args, ckpt=None, config=None):
        proc = _sample(setup, tmp_path / 'x.png', *args, ckpt=ckpt) if config is None else \
            run_python([sys.executable, TOOL, config, str(root / 'ckpt.pth'), *args])
        assert proc.returncode != 0, proc.stdout[-3000:]
        assert not (tmp_path / 'x.png').exists()
        return proc.stdout

    assert '--classes [4, 7]: class ids must lie in [0, 4).' in fails('--classes', '1', '4', '7')
    assert "sample.py: error: argument --per-class: must be an integer >= 1, got '0'" in \
        fails('--classes', '1', '--per-class', '0')
    assert "sample.py: error: argument --nrow: must be an integer >= 1, got '0'" in \
        fails('--classes', '1', '--nrow', '0')
    # a checkpoint with one renamed key: both names, and the file, in the message
    sd = dict(model.state_dict())
    sd['denoiser.final_layer.lin.weight'] = sd.pop('denoiser.final_layer.linear.weight')
    bad = tmp_path / 'renamed.pth'
    torch.save(dict(state_dict=sd), bad)
    msg = fails('--classes', '1', ckpt=bad)
    assert f"{bad}: does not match the config's model" in msg
    assert re.search(r"missing \(1\): \['denoiser\.final_layer\.linear\.weight'\]", msg), msg
    assert re.search(r"unexpected \(1\): \['denoiser\.final_layer\.lin\.weight'\]", msg), msg
    # a checkpoint URL with no network: one line naming the URL, the reason and the fix
    msg = fails('--classes', '1', ckpt='http://127.0.0.1:9/dit.pth')
    assert ('sample.py: CHECKPOINT: could not download http://127.0.0.1:9/dit.pth (URLError'
            in msg), msg[-3000:]
    assert 'Traceback' not in msg and 'pass the local path instead' in msg
    # a classifier config is not a generator
    classifier = osp.join(REPO, 'configs', 'visionllama',
                          'visionllama-plain-small-p16_8xb256-800e_in1k.py')
    assert 'needs a ClassConditionalDiffusion config' in fails('--classes', '1',
                                                               config=classifier)
