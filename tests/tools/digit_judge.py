"""Scoring generated digits: a classifier trained on the real digits labels the samples, and a
Fréchet distance in its hidden-feature space compares them with held-out real digits.

The judge is scikit-learn's MLP (one hidden layer of 64 ReLU units) on the 8x8 digits of the
quickstart's training split, scaled to [0, 1]; samples (any size, RGB or gray, uint8) are averaged to
gray and area-resized to 8x8 first. Its accuracy on the held-out split is returned as well, so a test
can check that the judge itself is good before trusting its verdict.
"""
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F


def _split():
    from sklearn.datasets import load_digits

    from visionllama_mm.datasets.digits import _split as digits_split
    digits = load_digits()
    x = digits.images.astype(np.float64) / 16.
    train, val = digits_split(digits.target)
    return x[train], digits.target[train], x[val], digits.target[val]


class DigitJudge:
    """Fit once; ``label(images)`` and ``features(images)`` take uint8 (N, H, W[, C])."""

    def __init__(self, seed: int = 0):
        from sklearn.neural_network import MLPClassifier
        xt, yt, xv, yv = _split()
        self.clf = MLPClassifier(hidden_layer_sizes=(64, ), max_iter=600, random_state=seed)
        self.clf.fit(xt.reshape(len(xt), -1), yt)
        self.val_images, self.val_labels = xv, yv
        self.val_accuracy = float(self.clf.score(xv.reshape(len(xv), -1), yv))

    @staticmethod
    def to_8x8(images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W) or (N, H, W, C) -> float (N, 8, 8) in [0, 1]."""
        x = torch.as_tensor(np.asarray(images), dtype=torch.float64) / 255.
        if x.dim() == 4:
            x = x.mean(-1)
        return F.interpolate(x[:, None], size=(8, 8), mode='area')[:, 0].numpy()

    def _flat(self, x8: np.ndarray) -> np.ndarray:
        return x8.reshape(len(x8), -1)

    def label(self, images: np.ndarray) -> np.ndarray:
        return self.clf.predict(self._flat(self.to_8x8(images)))

    def hidden(self, x8: np.ndarray) -> np.ndarray:
        """Hidden ReLU activations (N, 64) of 8x8 images in [0, 1]."""
        h = self._flat(x8) @ self.clf.coefs_[0] + self.clf.intercepts_[0]
        return np.maximum(h, 0)

    def score(self, images: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
        """-> class-consistency (share labelled as their conditioning class) and the feature FID
        against the held-out real digits."""
        from visionllama_mm.evaluation.generation import frechet_distance
        x8 = self.to_8x8(images)
        consistency = float((self.clf.predict(self._flat(x8)) == np.asarray(labels)).mean())
        fid = frechet_distance(self.hidden(x8), self.hidden(self.val_images))
        return dict(consistency=consistency, feature_fid=float(fid))


def load_samples(npz_path: str) -> Tuple[np.ndarray, np.ndarray]:
    """An ADM-layout ``.npz`` (``arr_0`` uint8 NHWC, ``arr_1`` labels) -> (images, labels)."""
    with np.load(npz_path, allow_pickle=False) as f:
        return f['arr_0'], f['arr_1']


def check_learns_digits(config: str, python: str, tmp_path, judge: DigitJudge,
                        min_consistency: float = 0.6) -> Dict[str, Dict[str, float]]:
    """Train a pixel-space digits toy config with ``tools/train.py``, sample 10 images per class
    with ``tools/test.py`` from the trained checkpoint and from the untrained model (the official
    initialisation), score both with ``judge``, and draw a grid with ``tools/generation/sample.py``.
    Returns ``dict(trained=..., untrained=...)`` of :meth:`DigitJudge.score` results."""
    import os.path as osp

    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    from PIL import Image

    from ..conftest import run_tool

    cfg = Config.fromfile(config)
    iters, size = cfg.train_cfg.max_iters, cfg.model.denoiser.input_size
    data_root = tmp_path / f'digits_{size}px'  # DigitsDataset writes size x size PNGs once
    run_tool([python, 'tools/train.py', config, '--work-dir', str(tmp_path / 'train'),
              '--cfg-options', f'train_dataloader.dataset.data_root={data_root}'])
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), tmp_path / 'untrained.pth')
    scores = {}
    for name, ckpt in (('trained', tmp_path / 'train' / f'iter_{iters}.pth'),
                       ('untrained', tmp_path / 'untrained.pth')):
        out = run_tool([python, 'tools/test.py', config, str(ckpt), '--work-dir',
                        str(tmp_path / name)])
        assert 'gen/num_samples: 100' in out, out[-2000:]
        images, labels = load_samples(
            osp.join(tmp_path, name, 'samples', f'samples_100x{size}x{size}x3.npz'))
        assert images.shape == (100, size, size, 3)
        assert sorted(labels.tolist()) == sorted(list(range(10)) * 10)
        scores[name] = judge.score(images, labels)
    print(f'{osp.basename(config)}: {scores}')
    trained, untrained = scores['trained'], scores['untrained']
    assert trained['consistency'] >= min_consistency, scores
    assert untrained['consistency'] <= 0.3, scores
    assert trained['feature_fid'] < 0.5 * untrained['feature_fid'], scores
    # the grid tool on the same checkpoint: one row per class
    grid = tmp_path / 'grid.png'
    run_tool([python, 'tools/generation/sample.py', config, str(tmp_path / 'train' /
              f'iter_{iters}.pth'), '--classes', *map(str, range(10)), '--per-class', '10',
              '--out', str(grid)])
    assert Image.open(grid).size == (10 * (size + 2) + 2, ) * 2
    return scores
