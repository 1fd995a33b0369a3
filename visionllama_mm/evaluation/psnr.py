"""Reconstruction PSNR of an image autoencoder (the LVM tokenizer).

mmpretrain/mmengine have no PSNR metric (mmagic has one, but it is not part of this stack), so a
small one lives here."""
import math
from typing import List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from ..registry import METRICS

__all__ = ['ReconstructionPSNR']


@METRICS.register_module()
class ReconstructionPSNR(BaseMetric):
    """PSNR in dB of reconstructions in [0, 1] (peak 1).

    Every predicted sample carries ``psnr`` (per image, from the mean squared error over its
    pixels and channels; ``VQGANAutoEncoder`` in predict mode). Reported: ``psnr/mean`` (mean of the
    per-image PSNRs, the usual image-restoration score) and ``psnr/mse`` (PSNR of the mean MSE).
    A perfect reconstruction (``psnr`` +inf) gives +inf; a NaN or -inf PSNR (a non-finite
    reconstruction) is an error naming the sample, never folded into a NaN average.
    """

    default_prefix = 'psnr'

    def __init__(self, collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for i, sample in enumerate(data_samples):
            if 'psnr' not in sample:
                raise KeyError('ReconstructionPSNR: a predicted sample has no "psnr"; the model '
                               'must be VQGANAutoEncoder (or set it) in predict mode.')
            idx = sample.get('sample_idx')
            where = f'sample {idx}' if idx is not None else f'sample {i} of the batch'
            value = sample['psnr']
            if hasattr(value, 'numel') and value.numel() != 1:
                raise ValueError(f'ReconstructionPSNR: psnr of {where} must be one number (per '
                                 f'image), got shape {tuple(value.shape)}.')
            value = float(value)
            if math.isnan(value) or value == -math.inf:
                raise ValueError(f'ReconstructionPSNR: {where} has psnr={value}: its '
                                 'reconstruction is not finite (the model diverged or got '
                                 'non-finite pixels).')
            self.results.append(value)

    def compute_metrics(self, results: List[float]) -> dict:
        if not results:
            raise ValueError('ReconstructionPSNR: no predicted samples.')
        mse = sum(10**(-p / 10) for p in results) / len(results)
        return dict(mean=sum(results) / len(results),
                    mse=-10 * math.log10(mse) if mse > 0 else math.inf)
