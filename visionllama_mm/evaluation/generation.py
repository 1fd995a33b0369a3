"""Evaluation of generated images: PNGs, an ADM-evaluator ``.npz`` and FID / IS /
precision / recall through torch-fidelity.

The metrics come from ``torch_fidelity.calculate_metrics`` (its TF-compatible Inception-v3 for FID
and IS); this module only feeds it the samples and the reference and never downloads weights: the
feature extractors' files are given by path, and a missing one is reported, not fetched.
"""
import logging
import os
import os.path as osp
import zipfile
from collections import Counter
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from PIL import Image
from torch.utils.data import Dataset
from torch_fidelity import (KEY_METRIC_FID, KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD,
                            KEY_METRIC_PRECISION, KEY_METRIC_RECALL, calculate_metrics)
from torch_fidelity.datasets import ImagesPathDataset
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

from ..registry import METRICS

__all__ = ['GenerationMetric', 'frechet_distance']

# The torch-fidelity feature extractors' weights: (file name, where to get it).
INCEPTION_WEIGHTS = (osp.basename(URL_INCEPTION_V3), URL_INCEPTION_V3)
VGG16_WEIGHTS = ('vgg16-397923af.pth', 'https://download.pytorch.org/models/vgg16-397923af.pth')
_EXTRACTORS = dict(inception='inception-v3-compat', vgg16='vgg16')
_METRICS = ('fid', 'isc', 'prc')


def frechet_distance(feats_a: Union[np.ndarray, torch.Tensor],
                     feats_b: Union[np.ndarray, torch.Tensor]) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID in any feature space).

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` with the sample means and covariances,
    computed in float64 by torch-fidelity's own FID functions (the ones its FID uses).

    Args:
        feats_a, feats_b: Features ``(N_a, D)`` and ``(N_b, D)`` (numpy or torch), ``N >= 2``.

    Returns:
        float: The distance.
    """
    stats = []
    for name, feats in (('feats_a', feats_a), ('feats_b', feats_b)):
        feats = torch.as_tensor(np.asarray(feats) if not torch.is_tensor(feats) else feats)
        if feats.dim() != 2 or feats.shape[0] < 2:
            raise ValueError(f'frechet_distance: {name} must be (N, D) features with N >= 2, got '
                             f'shape {tuple(feats.shape)}.')
        stats.append((name, feats.shape[1],
                      fid_features_to_statistics(feats.detach().cpu().double())))
    if stats[0][1] != stats[1][1]:
        raise ValueError(f'frechet_distance: feature sizes differ ({stats[0][1]} vs '
                         f'{stats[1][1]}).')
    return float(fid_statistics_to_metric(stats[0][2], stats[1][2], False)[KEY_METRIC_FID])


class _ArrayImages(Dataset):
    """uint8 ``(N, H, W, 3)`` images (an ADM reference batch) as torch-fidelity input: item ->
    uint8 ``(3, H, W)`` tensor."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.images[i].transpose(2, 0, 1)))


def _write_adm_npz(path: str, image_paths: Sequence[str], labels: Optional[np.ndarray]):
    """Write ``arr_0`` (uint8 ``(N, H, W, 3)``, read from ``image_paths`` one at a time) and,
    when given, ``arr_1`` (the labels) like ``np.savez(path, images, labels)``.

    ``np.savez`` would need all N images in memory (50k x 256^2 x 3 bytes = 9.8 GB); writing the
    ``.npy`` member of the (uncompressed) zip by streaming keeps one image in memory. The result
    is an ordinary ``.npz``: its ``arr_0.npy`` holds the bytes ``np.save`` writes (format 1.0
    header, C order), which ``np.load`` and the ADM evaluator's streaming reader read."""
    first = np.asarray(Image.open(image_paths[0]).convert('RGB'))
    shape = (len(image_paths), *first.shape)
    header = dict(descr=np.lib.format.dtype_to_descr(np.dtype(np.uint8)), fortran_order=False,
                  shape=shape)
    tmp = path + '.part'
    with zipfile.ZipFile(tmp, 'w', zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open('arr_0.npy', 'w', force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)  # as np.save
            for p in image_paths:
                img = np.asarray(Image.open(p).convert('RGB'))
                if img.shape != first.shape:
                    raise ValueError(f'GenerationMetric: {p} is {img.shape[1]}x{img.shape[0]}, '
                                     f'the first sample {image_paths[0]} '
                                     f'{first.shape[1]}x{first.shape[0]}; the .npz needs one '
                                     f'size.')
                f.write(np.ascontiguousarray(img).tobytes())
        if labels is not None:
            with zf.open('arr_1.npy', 'w', force_zip64=True) as f:
                np.lib.format.write_array(f, labels, allow_pickle=False)
    os.replace(tmp, path)


@METRICS.register_module()
class GenerationMetric(BaseMetric):
    """Saves generated images and scores them: FID, Inception Score, precision / recall.

    ``process`` (every rank) writes each predicted ``pred_img`` to
    ``{out_dir}/images/{sample_idx:06d}.png`` and keeps only its index, label and path, so the
    ranks never gather pixels (``out_dir`` must be on a file system rank 0 sees, as mmengine's
    result collection assumes too). ``compute_metrics`` (rank 0) orders the samples by
    ``sample_idx``, writes ``{out_dir}/samples_{N}x{H}x{W}x3.npz`` in the layout of ADM's sampling
    scripts (``arr_0`` uint8 NHWC images, ``arr_1`` int64 labels; what openai/guided-diffusion's
    ``evaluations/evaluator.py`` reads) and computes the metrics with torch-fidelity:

    - ``'fid'``: FID against ``reference`` on Inception-v3 pool features (``gen/fid``).
    - ``'isc'``: Inception Score (``gen/is_mean``, ``gen/is_std``; 10 splits, fewer when there are
      under 10 samples).
    - ``'prc'``: precision / recall against ``reference`` (k = 3 nearest neighbours;
      ``gen/precision``, ``gen/recall``). ``prc_features='inception'`` (default) uses the
      Inception pool features, as ADM's evaluator (the numbers in the DiT / SiT tables) does;
      ``'vgg16'`` uses VGG-16 fc2 features, torch-fidelity's default (Kynkäänniemi et al.).

    ``gen/num_samples`` is always reported. A metric that cannot be computed (a weights file or
    the reference is missing, too few samples) is left out with one warning that says what to
    set; a failure inside torch-fidelity is logged as an error and the other metrics are still
    returned: the samples of a long sampling run are never lost to a missing file.

    Args:
        out_dir (str): Folder for ``images/`` and the ``.npz``.
        save_png (bool): Keep the PNGs after evaluation (they are how ranks hand over samples, so
            they are always written; False deletes them at the end).
        save_npz (bool): Write the ADM ``.npz``.
        reference (str, optional): The real images for FID and precision / recall: a folder of
            images (searched recursively; all of one size, torch-fidelity batches them) or an ADM
            reference batch ``.npz`` whose ``arr_0`` holds uint8 NHWC images (e.g.
            ``VIRTUAL_imagenet256_labeled.npz``).
        metrics (Sequence[str]): Any of ``'fid'``, ``'isc'``, ``'prc'``.
        inception_weights (str, optional): torch-fidelity's Inception-v3 file
            ``weights-inception-2015-12-05-6726825d.pth``, needed by FID, IS and Inception
            precision / recall.
        vgg16_weights (str, optional): torchvision's ``vgg16-397923af.pth``, needed by
            precision / recall with ``prc_features='vgg16'``.
        prc_features (str): ``'inception'`` or ``'vgg16'``, see above.
        batch_size (int): torch-fidelity's feature-extraction batch size.
        prefix (str): Metric name prefix. Defaults to ``'gen'``.
        collect_device (str): mmengine's result-collection device.
    """

    default_prefix = 'gen'

    def __init__(self,
                 out_dir: str,
                 save_png: bool = True,
                 save_npz: bool = True,
                 reference: Optional[str] = None,
                 metrics: Sequence[str] = _METRICS,
                 inception_weights: Optional[str] = None,
                 vgg16_weights: Optional[str] = None,
                 prc_features: str = 'inception',
                 batch_size: int = 64,
                 prefix: Optional[str] = 'gen',
                 collect_device: str = 'cpu'):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if isinstance(metrics, str):
            metrics = (metrics, )
        unknown = [m for m in metrics if m not in _METRICS]
        if unknown:
            raise ValueError(f'GenerationMetric: unknown metrics {unknown}; choose from '
                             f'{list(_METRICS)}.')
        if prc_features not in _EXTRACTORS:
            raise ValueError(f'GenerationMetric: prc_features must be one of '
                             f'{list(_EXTRACTORS)}, got {prc_features!r}.')
        if batch_size < 1:
            raise ValueError(f'GenerationMetric: batch_size must be >= 1, got {batch_size}.')
        self.out_dir = out_dir
        self.image_dir = osp.join(out_dir, 'images')
        self.save_png = save_png
        self.save_npz = save_npz
        self.reference = reference
        self.metrics = tuple(dict.fromkeys(metrics))
        self.inception_weights = inception_weights
        self.vgg16_weights = vgg16_weights
        self.prc_features = prc_features
        self.batch_size = batch_size

    # ------------------------------------------------------------------ every rank
    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Write each sample's ``pred_img`` (uint8 ``(3, H, W)``) as PNG and record
        ``dict(sample_idx, label, path)``; ``label`` is None when a sample has no ``gt_label``."""
        os.makedirs(self.image_dir, exist_ok=True)
        for sample in data_samples:
            for key in ('pred_img', 'sample_idx'):
                if key not in sample:
                    raise KeyError(f'GenerationMetric: a predicted sample has no {key!r} (keys: '
                                   f'{sorted(sample)}); the model must be a generator in '
                                   f'predict mode and the dataset give sample_idx '
                                   f'(ClassLabelDataset).')
            img = torch.as_tensor(sample['pred_img']).detach().cpu()
            idx = int(sample['sample_idx'])
            if img.dtype != torch.uint8 or img.dim() != 3 or img.shape[0] != 3:
                raise ValueError(f'GenerationMetric: pred_img of sample {idx} must be a uint8 '
                                 f'(3, H, W) tensor, got {img.dtype} {tuple(img.shape)}.')
            label = sample.get('gt_label')
            if label is not None:
                label = torch.as_tensor(label).reshape(-1)
                if label.numel() != 1:
                    raise ValueError(f'GenerationMetric: gt_label of sample {idx} must hold one '
                                     f'class, got {label.tolist()}.')
                label = int(label.item())
            path = osp.join(self.image_dir, f'{idx:06d}.png')
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)
            self.results.append(dict(sample_idx=idx, label=label, path=path))

    # ------------------------------------------------------------------ rank 0
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        results = sorted(results, key=lambda r: r['sample_idx'])
        counts = Counter(r['sample_idx'] for r in results)
        dups = sorted(i for i, n in counts.items() if n > 1)
        if dups:
            raise ValueError(f'GenerationMetric: sample_idx {dups[:20]}'
                             f'{" ..." if len(dups) > 20 else ""} ({len(dups)} in all) came more '
                             f'than once; each index must be sampled once (use DefaultSampler '
                             f'with round_up=False, or reset the metric between evaluations).')
        missing = [r['path'] for r in results if not osp.isfile(r['path'])]
        if missing:
            raise FileNotFoundError(f'GenerationMetric: {len(missing)} sample PNGs are not '
                                    f'visible on rank 0, e.g. {missing[0]}; out_dir must be on a '
                                    f'file system that all ranks share.')
        paths = [r['path'] for r in results]
        with_label = [r['label'] is not None for r in results]
        if any(with_label) and not all(with_label):
            raise ValueError('GenerationMetric: some samples have gt_label and some do not.')
        labels = np.array([r['label'] for r in results], np.int64) if all(with_label) else None

        if self.save_npz:
            w, h = Image.open(paths[0]).size
            npz = osp.join(self.out_dir, f'samples_{len(paths)}x{h}x{w}x3.npz')
            _write_adm_npz(npz, paths, labels)
            print_log(f'GenerationMetric: wrote {len(paths)} samples to {npz} (ADM layout).',
                      logger='current')

        out = dict(num_samples=len(results))
        out.update(self._fidelity_metrics(paths))
        if not self.save_png:
            for p in paths:
                os.remove(p)
            if not os.listdir(self.image_dir):
                os.rmdir(self.image_dir)
        return out

    def _warn(self, msg: str) -> None:
        print_log(f'GenerationMetric: {msg}', logger='current', level=logging.WARNING)

    def _weights(self, path: Optional[str], key: str, file: tuple, what: str) -> Optional[str]:
        """``path`` when it is a file, else None after a warning naming the file and the key."""
        if path is not None and osp.isfile(path):
            return path
        self._warn(f'{what} not computed: the weights file {file[0]} is '
                   f'{"not set" if path is None else f"missing ({path} is not a file)"}. '
                   f'Download it from {file[1]} and set GenerationMetric({key}=<path to '
                   f'{file[0]}>) (weights are never downloaded during evaluation).')
        return None

    def _reference(self, what: str):
        """The reference as torch-fidelity input (a folder path or an in-memory dataset), or None
        after a warning."""
        ref = self.reference
        if ref is None:
            self._warn(f'{what} not computed: no reference images; set '
                       f'GenerationMetric(reference=<folder of images or ADM reference .npz>).')
            return None
        if osp.isdir(ref):
            return ref
        if osp.isfile(ref) and ref.endswith('.npz'):
            with np.load(ref, allow_pickle=False) as f:
                if 'arr_0' not in f.files:
                    self._warn(f'{what} not computed: reference {ref} has no arr_0 (images).')
                    return None
                images = f['arr_0']
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
                self._warn(f'{what} not computed: arr_0 of reference {ref} must be uint8 '
                           f'(N, H, W, 3) images, got {images.dtype} {images.shape}.')
                return None
            return _ArrayImages(images)
        self._warn(f'{what} not computed: reference {ref} is neither a folder nor an .npz file.')
        return None

    def _fidelity_metrics(self, paths: List[str]) -> Dict[str, float]:
        """Group the requested metrics by feature extractor and run torch-fidelity once per
        group (one set of weights per call)."""
        wanted = set(self.metrics)
        if len(paths) < 2 and wanted & {'fid', 'prc'}:
            self._warn(f'FID and precision/recall not computed: they need at least 2 samples, '
                       f'got {len(paths)}.')
            wanted -= {'fid', 'prc'}
        groups = dict(inception=[m for m in ('isc', 'fid') if m in wanted], vgg16=[])
        if 'prc' in wanted:
            groups[self.prc_features].append('prc')
        names = dict(isc='Inception Score', fid='FID', prc='precision/recall')
        weights = dict(inception=('inception_weights', self.inception_weights, INCEPTION_WEIGHTS),
                       vgg16=('vgg16_weights', self.vgg16_weights, VGG16_WEIGHTS))
        out = {}
        for extractor, group in groups.items():
            if not group:
                continue
            key, path, file = weights[extractor]
            path = self._weights(path, key, file, ' and '.join(names[m] for m in group))
            if path is None:
                continue
            reference = None
            if {'fid', 'prc'} & set(group):
                reference = self._reference(' and '.join(names[m] for m in group
                                                         if m != 'isc'))
                if reference is None:
                    group = [m for m in group if m == 'isc']
                    if not group:
                        continue
            out.update(self._run_fidelity(paths, reference, group, extractor, path))
        return out

    def _run_fidelity(self, paths, reference, group, extractor, weights) -> Dict[str, float]:
        kwargs = dict(
            input1=ImagesPathDataset(paths),
            cuda=torch.cuda.is_available(),
            batch_size=self.batch_size,
            isc='isc' in group,
            fid='fid' in group,
            prc='prc' in group,
            feature_extractor=_EXTRACTORS[extractor],
            feature_extractor_weights_path=weights,
            isc_splits=min(10, len(paths)),
            samples_find_deep=True,  # a reference folder in ImageNet layout (class folders)
            cache=False,             # nothing written under $TORCH_HOME
            verbose=False)
        if reference is not None:
            kwargs['input2'] = reference
        try:
            res = calculate_metrics(**kwargs)
        except Exception as e:  # noqa: BLE001 (the samples are saved; report, keep the rest)
            print_log(f'GenerationMetric: torch-fidelity failed on {group} with '
                      f'{_EXTRACTORS[extractor]} ({type(e).__name__}: {e}); these metrics are '
                      f'missing. The samples are in {self.out_dir}.', logger='current',
                      level=logging.ERROR)
            return {}
        keys = dict(fid=KEY_METRIC_FID, is_mean=KEY_METRIC_ISC_MEAN, is_std=KEY_METRIC_ISC_STD,
                    precision=KEY_METRIC_PRECISION, recall=KEY_METRIC_RECALL)
        return {name: float(res[k]) for name, k in keys.items() if k in res}
