"""Evaluation of generated images: PNGs, an ADM-evaluator ``.npz`` and FID / sFID / IS /
precision / recall on torch-fidelity's feature extractors.

The Inception metrics come from one pass of torch-fidelity's TF-compatible Inception-v3 (the network
of ADM's evaluator) over each image set, scored by torch-fidelity's IS and precision / recall
functions and this module's Fréchet distance; precision / recall on VGG-16 features go through
``torch_fidelity.calculate_metrics``. Weights are never downloaded: the feature extractors' files
are given by path, and a missing one is reported, not fetched.
"""
import logging
import os
import os.path as osp
import zipfile
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from PIL import Image
from torch.utils.data import Dataset
from torch_fidelity import (KEY_METRIC_FID, KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD,
                            KEY_METRIC_PRECISION, KEY_METRIC_RECALL, calculate_metrics)
from torch_fidelity.datasets import ImagesPathDataset, TransformPILtoRGBTensor
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import (URL_INCEPTION_V3,
                                                          FeatureExtractorInceptionV3)
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric
from torch_fidelity.utils import get_featuresdict_from_dataset, glob_samples_paths

from ..registry import METRICS
from ..utils.files import atomic_path

__all__ = ['GenerationMetric', 'frechet_distance']

# The torch-fidelity feature extractors' weights: (file name, where to get it).
INCEPTION_WEIGHTS = (osp.basename(URL_INCEPTION_V3), URL_INCEPTION_V3)
VGG16_WEIGHTS = ('vgg16-397923af.pth', 'https://download.pytorch.org/models/vgg16-397923af.pth')
_EXTRACTORS = dict(inception='inception-v3-compat', vgg16='vgg16')
_METRICS = ('fid', 'isc', 'prc')
#: Image files torch-fidelity finds in a reference folder (searched recursively).
_IMAGE_EXTS = 'png,jpg,jpeg'
#: Inception pool features: with fewer samples their covariance is singular and FID is dominated
#: by the sample count.
_FID_DIMS = 2048
#: Neighbours of torch-fidelity's precision / recall (k = 3): each set needs more samples.
_PRC_K = 3


#: ADM's sFID features: the first 7 channels of Inception's ``mixed_6/conv`` map (the ReLU output of
#: the 1x1 branch of the block torch-fidelity names ``Mixed_6d``, 192 x 17 x 17 for the 299 x 299
#: input), flattened in ADM's NHWC order: 17 * 17 * 7 = 2023 values per image.
_SFID_CHANNELS = 7
_SFID_DIMS = 17 * 17 * _SFID_CHANNELS
_SPATIAL = 'mixed_6/conv'
#: The statistics an ADM reference batch may carry (over the whole reference dataset): FID's and
#: sFID's mean and covariance, which ADM's evaluator uses instead of its ``arr_0`` images.
_ADM_STATS = dict(mu=(_FID_DIMS, ), sigma=(_FID_DIMS, _FID_DIMS), mu_s=(_SFID_DIMS, ),
                  sigma_s=(_SFID_DIMS, _SFID_DIMS))


class _Gaussian:
    """Mean, trace and covariance of a feature set in float64, the covariance held as a thin
    factor ``R`` (``R.T @ R`` = covariance, ``k x D`` with k < N <= D) when there are no more
    samples than dimensions, else as the ``D x D`` matrix.

    ``tr((S_a S_b)^(1/2))`` of the Fréchet distance is the sum of the square roots of the
    eigenvalues of ``R_a S_b R_a.T`` (the sum of singular values of ``R_a R_b.T`` when both are
    factors): exact, and with N < D samples a problem of N x N instead of the eigenvalues of a
    non-symmetric D x D product (~35 s at D = 2048 on two cores)."""

    def __init__(self, mean: np.ndarray, trace: float, root: Optional[np.ndarray] = None,
                 sigma: Optional[np.ndarray] = None):
        self.mean, self.trace, self.root, self.sigma = mean, trace, root, sigma

    @classmethod
    def from_features(cls, feats: np.ndarray) -> '_Gaussian':
        feats = np.asarray(feats, np.float64)
        n, dims = feats.shape
        mean = feats.mean(0)
        if n <= dims:  # the centred samples: a factor of np.cov's matrix
            root = (feats - mean) / np.sqrt(n - 1)
            return cls(mean, float((root**2).sum()), root=root)
        return cls.from_statistics(mean, np.cov(feats, rowvar=False))

    @classmethod
    def from_statistics(cls, mean: np.ndarray, sigma: np.ndarray) -> '_Gaussian':
        sigma = np.asarray(sigma, np.float64)
        return cls(np.asarray(mean, np.float64), float(np.trace(sigma)), sigma=sigma)

    def factor(self) -> np.ndarray:
        if self.root is None:
            eigval, eigvec = np.linalg.eigh((self.sigma + self.sigma.T) / 2)
            self.root = eigvec.T * np.sqrt(np.clip(eigval, 0, None))[:, None]
        return self.root

    def distance(self, other: '_Gaussian') -> float:
        diff = self.mean - other.mean
        a, b = (self, other) if self.root is not None or other.root is None else (other, self)
        if b.root is not None:
            tr_covmean = np.linalg.svd(a.factor() @ b.root.T, compute_uv=False).sum()
        else:
            prod = a.factor() @ b.sigma @ a.factor().T
            tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((prod + prod.T) / 2), 0, None)).sum()
        return float(diff @ diff + self.trace + other.trace - 2 * tr_covmean)


def frechet_distance(feats_a: Union[np.ndarray, torch.Tensor],
                     feats_b: Union[np.ndarray, torch.Tensor]) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID in any feature space).

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` with the sample means and (ddof=1)
    covariances, as ADM's evaluator and torch-fidelity define it, computed in float64. The matrix
    square root's trace is taken as the sum of singular values of a product of covariance factors,
    which is exact and needs no D x D non-symmetric eigendecomposition when N < D.

    Args:
        feats_a, feats_b: Features ``(N_a, D)`` and ``(N_b, D)`` (numpy or torch), ``N >= 2``.

    Returns:
        float: The distance.
    """
    stats = []
    for name, feats in (('feats_a', feats_a), ('feats_b', feats_b)):
        feats = feats.detach().cpu().double().numpy() if torch.is_tensor(feats) else np.asarray(
            feats, np.float64)
        if feats.ndim != 2 or feats.shape[0] < 2:
            raise ValueError(f'frechet_distance: {name} must be (N, D) features with N >= 2, got '
                             f'shape {tuple(feats.shape)}.')
        stats.append(feats)
    if stats[0].shape[1] != stats[1].shape[1]:
        raise ValueError(f'frechet_distance: feature sizes differ ({stats[0].shape[1]} vs '
                         f'{stats[1].shape[1]}).')
    return _Gaussian.from_features(stats[0]).distance(_Gaussian.from_features(stats[1]))


class _InceptionFeatures(FeatureExtractorBase):
    """torch-fidelity's Inception-v3 (``inception-v3-compat``) that also gives ADM's sFID features,
    all from one forward pass.

    torch-fidelity's extractor only exposes pooled features and logits, so the ``mixed_6/conv``
    map is taken by a forward hook on its ``Mixed_6d.branch1x1`` module (the same tensor ADM's
    evaluator reads from the TensorFlow graph) and returned as ``'mixed_6/conv'``: the first 7
    channels, flattened in NHWC order (``(N, 2023)``, float32)."""

    def __init__(self, weights: str, features_list: Sequence[str]):
        super().__init__('inception-v3-compat', list(features_list))
        inner = [f for f in features_list if f != _SPATIAL] or ['2048']
        self.inception = FeatureExtractorInceptionV3(
            'inception-v3-compat', inner, feature_extractor_weights_path=weights)
        self._spatial: Optional[torch.Tensor] = None
        self.inception.Mixed_6d.branch1x1.register_forward_hook(self._keep_spatial)

    @staticmethod
    def get_provided_features_list():
        return FeatureExtractorInceptionV3.get_provided_features_list() + (_SPATIAL, )

    def _keep_spatial(self, module, args, output):
        self._spatial = output[:, :_SFID_CHANNELS]

    def forward(self, x: torch.Tensor) -> tuple:
        self._spatial = None
        feats = dict(zip(self.inception.features_list, self.inception(x)))
        if _SPATIAL in self.features_list:
            spatial = self._spatial
            feats[_SPATIAL] = spatial.permute(0, 2, 3, 1).reshape(len(spatial), -1).float()
        self._spatial = None
        return tuple(feats[f] for f in self.features_list)


def _inception_features(inputs: Dict[str, Dataset], weights: str, features: Sequence[str],
                        batch_size: int) -> Dict[str, Dict[str, torch.Tensor]]:
    """``{input name: {feature name: (N, D) tensor}}`` from one Inception pass over each dataset
    (torch-fidelity's own batching; DataLoader workers only when there is more than one batch)."""
    cuda = torch.cuda.is_available()
    model = _InceptionFeatures(weights, features)
    if cuda:
        model.cuda()
    return {
        name: get_featuresdict_from_dataset(data, model, batch_size, cuda,
                                            save_cpu_ram=len(data) <= batch_size,
                                            verbose=False)
        for name, data in inputs.items()
    }


def _npz_header(path: str, member: str = 'arr_0') -> Optional[Tuple[tuple, np.dtype]]:
    """(shape, dtype) of ``member`` in an ``.npz`` read from its header only, or None without it."""
    with zipfile.ZipFile(path) as zf:
        if f'{member}.npy' not in zf.namelist():
            return None
        with zf.open(f'{member}.npy') as f:
            major, _ = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if major == 1 else
                    np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(f)
    return shape, dtype


class _Resize:
    """PIL image -> uint8 ``(3, H, W)`` tensor of ``size`` (H, W): PIL's bicubic resize (antialiased
    when downsampling), then torch-fidelity's own PIL-to-tensor transform."""

    def __init__(self, size: Tuple[int, int]):
        self.size = size
        self.to_tensor = TransformPILtoRGBTensor()

    def __call__(self, img: Image.Image) -> torch.Tensor:
        if img.size != (self.size[1], self.size[0]):
            img = img.resize((self.size[1], self.size[0]), Image.Resampling.BICUBIC)
        return self.to_tensor(img)


class _ArrayImages(Dataset):
    """uint8 ``(N, H, W, 3)`` images (an ADM reference batch) as torch-fidelity input: item ->
    uint8 ``(3, H, W)`` tensor (resized to ``size`` when given)."""

    def __init__(self, images: np.ndarray, size: Optional[Tuple[int, int]] = None):
        self.images = images
        self.resize = _Resize(size) if size is not None else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.resize is not None:
            return self.resize(Image.fromarray(self.images[i]))
        return torch.from_numpy(np.ascontiguousarray(self.images[i].transpose(2, 0, 1)))


def _hw(size: Tuple[int, int]) -> str:
    return f'{size[0]}x{size[1]}'


def _check_size(size) -> Optional[Tuple[int, int]]:
    """``resize_to``: None, an int or an (H, W) pair of positive ints -> (H, W) or None."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size) if isinstance(
        size, (list, tuple)) else ()
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                 for s in pair):
        raise ValueError(f'GenerationMetric: resize_to must be a positive int or an (H, W) pair of '
                         f'them, got {size!r}.')
    return pair


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
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, 'w', zipfile.ZIP_STORED,
                                                   allowZip64=True) as zf:
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


@METRICS.register_module()
class GenerationMetric(BaseMetric):
    """Saves generated images and scores them: FID, sFID, Inception Score, precision / recall.

    ``process`` (every rank) writes each predicted ``pred_img`` to
    ``{out_dir}/images/{sample_idx:06d}.png`` and keeps only its index, label and path, so the
    ranks never gather pixels (``out_dir`` must be on a file system rank 0 sees, as mmengine's
    result collection assumes too). ``compute_metrics`` (rank 0) orders the samples by
    ``sample_idx``, writes ``{out_dir}/samples_{N}x{H}x{W}x3.npz`` in the layout of ADM's sampling
    scripts (``arr_0`` uint8 NHWC images, ``arr_1`` int64 labels; what openai/guided-diffusion's
    ``evaluations/evaluator.py`` reads) and computes the metrics on torch-fidelity's Inception-v3
    (one pass over each image set gives the pool features, the logits and the spatial features):

    - ``'fid'``: FID against ``reference`` on the 2048-d Inception pool features (``gen/fid``)
      and, beside it, ADM's sFID (``gen/sfid``): the same Fréchet distance on the first 7
      channels of Inception's ``mixed_6/conv`` map (17 x 17, flattened: 2023-d), which weighs
      spatial structure. An ADM reference batch with statistics (``mu``, ``sigma``, ``mu_s``,
      ``sigma_s``, computed over the whole reference dataset) is scored against those, as ADM's
      evaluator does; one with FID's statistics but not sFID's is refused.
    - ``'isc'``: Inception Score (``gen/is_mean``, ``gen/is_std``; 10 splits, fewer when there are
      under 10 samples; torch-fidelity shuffles before splitting, ADM's evaluator takes
      5,000-sample splits in order: also 10 for 50,000 samples).
    - ``'prc'``: precision / recall against ``reference`` (k = 3 nearest neighbours;
      ``gen/precision``, ``gen/recall``). ``prc_features='inception'`` (default) uses the
      Inception pool features, as ADM's evaluator (the numbers in the DiT / SiT tables) does;
      ``'vgg16'`` uses VGG-16 fc2 features, torch-fidelity's default (Kynkäänniemi et al.).

    ``gen/num_samples`` is always reported. A metric that cannot be computed (a weights file or
    the reference is missing, the reference folder is empty, too few samples) is left out with one
    warning that says what to set; a failure inside torch-fidelity is logged as an error and the
    other metrics are still returned: the samples of a long sampling run are never lost to a
    missing file. FID from fewer than 2048 samples (or reference images) is computed with a
    warning: the covariance of the 2048-d features is then singular and the number is dominated by
    the sample count (published FIDs use 50,000).

    Inputs that make FID and precision / recall meaningless are refused at the first batch, before
    any sampling time is spent: samples of another size than the reference images (FID between 8x8
    and 32x32 images measures the resizing, not the model), a reference folder of mixed sizes, and
    samples of different sizes. ``resize_to`` resizes samples and reference to one size instead.

    Args:
        out_dir (str): Folder for ``images/`` and the ``.npz``.
        save_png (bool): Keep the PNGs after evaluation (they are how ranks hand over samples, so
            they are always written; False deletes them at the end).
        save_npz (bool): Write the ADM ``.npz``.
        reference (str, optional): The real images for FID, sFID and precision / recall: a
            folder of images (searched recursively; of the samples' size unless ``resize_to`` is
            set) or an ADM reference batch ``.npz`` whose ``arr_0`` holds uint8 NHWC images (e.g.
            ``VIRTUAL_imagenet256_labeled.npz``; its ``mu`` / ``sigma`` / ``mu_s`` / ``sigma_s``,
            when present, are the FID and sFID statistics and ``arr_0`` serves precision /
            recall).
        metrics (Sequence[str]): Any of ``'fid'`` (FID and sFID), ``'isc'``, ``'prc'``.
        inception_weights (str, optional): torch-fidelity's Inception-v3 file
            ``weights-inception-2015-12-05-6726825d.pth``, needed by FID, sFID, IS and Inception
            precision / recall.
        vgg16_weights (str, optional): torchvision's ``vgg16-397923af.pth``, needed by
            precision / recall with ``prc_features='vgg16'``.
        prc_features (str): ``'inception'`` or ``'vgg16'``, see above.
        resize_to (int | tuple[int, int], optional): Resize samples and reference images to
            this (H, W) (PIL bicubic, antialiased) before computing features, e.g. to compare 8x8
            samples with a reference of larger images. The PNGs and the ``.npz`` keep the samples
            as generated. Default: no resizing; the sizes must match.
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
                 resize_to: Optional[Union[int, Sequence[int]]] = None,
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
        if reference is not None and osp.isdir(reference):
            ref, images = osp.realpath(reference), osp.realpath(self.image_dir)
            if images == ref or images.startswith(ref.rstrip(os.sep) + os.sep):
                raise ValueError(f'GenerationMetric: the samples go to {self.image_dir}, inside the '
                                 f'reference folder {reference}: they would be counted as '
                                 f'reference images. Give an out_dir outside the reference.')
        self.save_png = save_png
        self.save_npz = save_npz
        self.reference = reference
        self.metrics = tuple(dict.fromkeys(metrics))
        self.inception_weights = inception_weights
        self.vgg16_weights = vgg16_weights
        self.prc_features = prc_features
        self.batch_size = batch_size
        self.resize_to = _check_size(resize_to)
        self._sample_size: Optional[tuple] = None  # ((H, W), sample_idx) of the first sample

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
            self._check_sample_size(tuple(img.shape[1:]), idx)
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

    def _check_sample_size(self, size: Tuple[int, int], idx: int) -> None:
        """The first sample fixes the size and is compared with the reference; every later one
        must have it (the .npz and the unresized metrics hold one size)."""
        if self._sample_size is None:
            self._sample_size = (size, idx)
            self._check_reference_size(size)
            problem = self._statistics_problem()
            if problem:
                raise ValueError(f'GenerationMetric: {problem}')
        elif size != self._sample_size[0] and (self.resize_to is None or self.save_npz):
            first, first_idx = self._sample_size
            raise ValueError(f'GenerationMetric: sample {idx} is {_hw(size)} (HxW), sample '
                             f'{first_idx} was {_hw(first)}; the samples of one evaluation must '
                             f'have one size (the .npz and FID hold one size).')

    def _reference_sizes(self) -> Optional[Dict[Tuple[int, int], str]]:
        """``{(H, W): an example}`` of the reference images, read from the image headers (a
        folder) or the ``.npz`` header; None when there is no usable reference (reported when
        the metrics are computed)."""
        ref = self.reference
        if ref is None:
            return None
        if osp.isdir(ref):
            sizes: Dict[Tuple[int, int], str] = {}
            for p in glob_samples_paths(ref, True, _IMAGE_EXTS, verbose=False):
                with Image.open(p) as img:
                    sizes.setdefault((img.height, img.width), p)
            return sizes or None
        if osp.isfile(ref) and ref.endswith('.npz'):
            head = _npz_header(ref)
            if head is None or len(head[0]) != 4:
                return None
            return {tuple(head[0][1:3]): f'{ref} (arr_0)'}
        return None

    def _check_reference_size(self, size: Tuple[int, int]) -> None:
        """Refuse a reference whose images are of another size than the samples (or of several
        sizes) when FID or precision / recall are asked for and ``resize_to`` is not set."""
        if self.resize_to is not None or not {'fid', 'prc'} & set(self.metrics):
            return
        sizes = self._reference_sizes()
        if not sizes:
            return
        fix = (f'Set GenerationMetric(resize_to=...) to resize samples and reference to one size '
               f'(e.g. resize_to={size[0] if size[0] == size[1] else size}), or use a reference '
               f'of {_hw(size)} images.')
        if len(sizes) > 1:
            listed = ', '.join(f'{_hw(s)} (e.g. {p})' for s, p in sorted(sizes.items())[:4])
            raise ValueError(f'GenerationMetric: the reference images in {self.reference} have '
                             f'{len(sizes)} sizes (HxW): {listed}; FID and precision/recall need '
                             f'one. {fix}')
        (ref_size, example), = sizes.items()
        if ref_size != size:
            raise ValueError(
                f'GenerationMetric: the samples are {_hw(size)} (HxW) but the reference images in '
                f'{self.reference} are {_hw(ref_size)} (e.g. {example}); FID and precision/recall '
                f'between images of different sizes measure the resizing, not the model. {fix}')

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

    def _statistics_problem(self) -> Optional[str]:
        """What is wrong with the FID / sFID statistics of an ADM reference batch (read from the
        ``.npz`` headers), or None (none there, or all four of the right shapes)."""
        ref = self.reference
        if 'fid' not in self.metrics or ref is None or not (osp.isfile(ref)
                                                            and ref.endswith('.npz')):
            return None
        heads = {k: _npz_header(ref, k) for k in _ADM_STATS}
        present = [k for k, head in heads.items() if head is not None]
        if not present:
            return None
        missing = [k for k, head in heads.items() if head is None]
        if missing:
            return (f'the reference {ref} holds the statistics {present} but not {missing}. '
                    f'FID and sFID come from one reference: an ADM reference batch holds FID\'s '
                    f'(mu, sigma) and sFID\'s (mu_s, sigma_s) statistics. Use a reference batch '
                    f'with all four (e.g. ADM\'s VIRTUAL_imagenet256_labeled.npz), or the '
                    f'reference images (a folder, or an .npz with arr_0 only) to compute both.')
        wrong = [f'{k} {tuple(heads[k][0])} (expected {shape})' for k, shape in _ADM_STATS.items()
                 if tuple(heads[k][0]) != shape]
        if wrong:
            return (f'the statistics in the reference {ref} have other shapes than ADM\'s: '
                    f'{", ".join(wrong)}; FID uses the {_FID_DIMS}-d Inception pool features, '
                    f'sFID the {_SFID_DIMS}-d mixed_6/conv features.')
        return None

    def _reference_statistics(self) -> Optional[Dict[str, np.ndarray]]:
        """The FID and sFID statistics of an ADM reference batch (``mu``, ``sigma``, ``mu_s``,
        ``sigma_s``; computed over the whole reference dataset, what ADM's evaluator scores
        against), or None when the reference has none."""
        ref = self.reference
        if ref is None or not (osp.isfile(ref) and ref.endswith('.npz')):
            return None
        with np.load(ref, allow_pickle=False) as f:
            if not set(_ADM_STATS) & set(f.files):
                return None
            return {k: f[k] for k in _ADM_STATS}

    def _reference(self, what: str):
        """``(dataset, number of images)`` of the reference images (resized to ``resize_to`` when
        set), or None after a warning."""
        ref = self.reference
        if ref is None:
            self._warn(f'{what} not computed: no reference images; set '
                       f'GenerationMetric(reference=<folder of images or ADM reference .npz>).')
            return None
        if osp.isdir(ref):
            files = glob_samples_paths(ref, True, _IMAGE_EXTS, verbose=False)
            if not files:
                self._warn(f'{what} not computed: the reference folder {ref} holds no images '
                           f'({_IMAGE_EXTS.replace(",", ", ")} files, searched recursively).')
                return None
            resize = _Resize(self.resize_to) if self.resize_to is not None else None
            return ImagesPathDataset(files, transforms=resize), len(files)
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
            return _ArrayImages(images, self.resize_to), len(images)
        self._warn(f'{what} not computed: reference {ref} is neither a folder nor an .npz file.')
        return None

    def _enough(self, group: List[str], num_samples: int, num_reference: Optional[int],
                fid_reference: Optional[int]) -> List[str]:
        """Drop (with a warning) the metrics of ``group`` the sample counts cannot support; warn
        when FID is computed from fewer samples than its feature dimensions. ``fid_reference`` is
        the number of reference images FID is computed from (None: the reference batch's own
        statistics)."""
        counts = f'{num_samples} samples and {num_reference} reference images'
        if 'prc' in group and min(num_samples, num_reference) <= _PRC_K:
            self._warn(f'precision/recall not computed: its k={_PRC_K} nearest neighbours need '
                       f'more than {_PRC_K} images in each set, got {counts}.')
            group = [m for m in group if m != 'prc']
        if 'fid' in group and fid_reference is not None and fid_reference < 2:
            self._warn(f'FID not computed: it needs at least 2 reference images, got '
                       f'{fid_reference}.')
            group = [m for m in group if m != 'fid']
        if 'fid' in group and min(num_samples, fid_reference or num_samples) < _FID_DIMS:
            counts = (f'{num_samples} samples' if fid_reference is None else
                      f'{num_samples} samples and {fid_reference} reference images')
            self._warn(f'FID from {counts}: with fewer than {_FID_DIMS} (the Inception feature '
                       f'size) the covariance is singular and the value is dominated by the '
                       f'sample count (sFID likewise, below {_SFID_DIMS}); compare it only with '
                       f'FIDs from the same counts (published FIDs use 50,000 samples).')
        return group

    def _fidelity_metrics(self, paths: List[str]) -> Dict[str, float]:
        """Group the requested metrics by feature extractor and compute each group from one
        feature pass over each image set."""
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
            reference = stats = num_reference = None
            if 'fid' in group:
                problem = self._statistics_problem()
                if problem:
                    self._warn(f'FID not computed: {problem}')
                    group = [m for m in group if m != 'fid']
                else:
                    stats = self._reference_statistics()
            # the reference images: for precision / recall, and for FID without statistics
            on_images = [m for m in group if m == 'prc' or (m == 'fid' and stats is None)]
            if on_images:
                found = self._reference(' and '.join(names[m] for m in on_images))
                if found is None:
                    group = [m for m in group if m not in on_images]
                else:
                    reference, num_reference = found
            group = self._enough(group, len(paths), num_reference,
                                 None if stats is not None else num_reference)
            if not [m for m in group if m == 'prc' or (m == 'fid' and stats is None)]:
                reference = None
            if not group:
                continue
            if extractor == 'inception':
                out.update(self._inception_metrics(paths, reference, stats, group, path))
            else:
                out.update(self._run_fidelity(paths, reference, group, extractor, path))
        return out

    def _samples(self, paths: List[str]) -> Dataset:
        return ImagesPathDataset(paths,
                                 transforms=_Resize(self.resize_to) if self.resize_to else None)

    def _failed(self, group, extractor: str, e: Exception) -> Dict[str, float]:
        print_log(f'GenerationMetric: torch-fidelity failed on {group} with '
                  f'{_EXTRACTORS[extractor]} ({type(e).__name__}: {e}); these metrics are '
                  f'missing. The samples are in {self.out_dir}.', logger='current',
                  level=logging.ERROR)
        return {}

    def _inception_metrics(self, paths, reference, stats, group, weights) -> Dict[str, float]:
        """IS, FID, sFID and Inception precision / recall from one Inception pass over the samples
        and one over the reference images (when they are needed)."""
        features = (['logits_unbiased'] if 'isc' in group else []) + (
            ['2048'] if {'fid', 'prc'} & set(group) else []) + (
                [_SPATIAL] if 'fid' in group else [])
        inputs = dict(samples=self._samples(paths))
        if reference is not None:
            inputs['reference'] = reference
        try:
            feats = _inception_features(inputs, weights, features, self.batch_size)
        except Exception as e:  # noqa: BLE001 (the samples are saved; report, keep the rest)
            return self._failed(group, 'inception', e)
        samples, ref = feats['samples'], feats.get('reference')
        out = {}
        if 'fid' in group:
            for name, layer, mean, sigma in (('fid', '2048', 'mu', 'sigma'),
                                             ('sfid', _SPATIAL, 'mu_s', 'sigma_s')):
                target = (_Gaussian.from_statistics(stats[mean], stats[sigma]) if stats is not None
                          else _Gaussian.from_features(ref[layer].numpy()))
                out[name] = _Gaussian.from_features(samples[layer].numpy()).distance(target)
        if 'isc' in group:
            res = isc_features_to_metric(samples['logits_unbiased'], splits=min(10, len(paths)))
            out.update(is_mean=float(res[KEY_METRIC_ISC_MEAN]),
                       is_std=float(res[KEY_METRIC_ISC_STD]))
        if 'prc' in group:
            res = prc_features_to_metric(samples['2048'], ref['2048'], prc_neighborhood=_PRC_K,
                                         verbose=False)
            out.update(precision=float(res[KEY_METRIC_PRECISION]),
                       recall=float(res[KEY_METRIC_RECALL]))
        return out

    def _run_fidelity(self, paths, reference, group, extractor, weights) -> Dict[str, float]:
        """Precision / recall on another extractor than Inception, by torch-fidelity."""
        kwargs = dict(
            input1=self._samples(paths),
            cuda=torch.cuda.is_available(),
            batch_size=self.batch_size,
            isc='isc' in group,
            fid='fid' in group,
            prc='prc' in group,
            feature_extractor=_EXTRACTORS[extractor],
            feature_extractor_weights_path=weights,
            isc_splits=min(10, len(paths)),
            cache=False,             # nothing written under $TORCH_HOME
            verbose=False)
        if reference is not None:
            kwargs['input2'] = reference
        try:
            res = calculate_metrics(**kwargs)
        except Exception as e:  # noqa: BLE001 (the samples are saved; report, keep the rest)
            return self._failed(group, extractor, e)
        keys = dict(fid=KEY_METRIC_FID, is_mean=KEY_METRIC_ISC_MEAN, is_std=KEY_METRIC_ISC_STD,
                    precision=KEY_METRIC_PRECISION, recall=KEY_METRIC_RECALL)
        return {name: float(res[k]) for name, k in keys.items() if k in res}
