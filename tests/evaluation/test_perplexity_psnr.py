"""Perplexity and ReconstructionPSNR refuse inputs that would make their numbers meaningless."""
import logging
import math

import pytest
import torch

from visionllama_mm.evaluation import perplexity
from visionllama_mm.evaluation.perplexity import Perplexity
from visionllama_mm.evaluation.psnr import ReconstructionPSNR


def test_perplexity_names_bad_samples_and_counts_unscored_ones(monkeypatch):
    metric = Perplexity()
    with pytest.raises(ValueError, match=r'Perplexity: sample 7 has nll=nan over 12 tokens; a '
                                         r'negative log-likelihood must be finite and >= 0'):
        metric.process(None, [dict(nll=float('nan'), num_tokens=12, sample_idx=7)])
    with pytest.raises(ValueError, match=r'sample 1 of the batch has nll=-5 over 3 tokens'):
        metric.process(None, [dict(nll=1., num_tokens=3), dict(nll=-5., num_tokens=3)])
    with pytest.raises(ValueError, match=r'num_tokens of sample 0 of the batch must be a count '
                                         r'>= 0, got -2'):
        metric.process(None, [dict(nll=1., num_tokens=-2)])
    with pytest.raises(ValueError, match=r'nll of sample 0 of the batch must be one number, got '
                                         r'Tensor of shape \(2,\)'):
        metric.process(None, [dict(nll=torch.ones(2), num_tokens=4)])
    metric = Perplexity()
    with pytest.raises(ValueError, match=r'none of the 2 samples had a scored token'):
        metric.process(None, [dict(nll=0., num_tokens=0)] * 2)
        metric.compute_metrics(metric.results)
    warnings = []
    monkeypatch.setattr(perplexity, 'print_log',
                        lambda msg, logger=None, level=logging.INFO: warnings.append(msg))
    metric = Perplexity()
    metric.process(None, [dict(nll=torch.tensor(20.), num_tokens=10), dict(nll=0., num_tokens=0),
                          dict(nll=8000., num_tokens=10)])
    res = metric.compute_metrics(metric.results)
    assert res['nll'] == pytest.approx(401.) and res['token'] == pytest.approx(math.exp(401.))
    assert res['mean'] == math.inf  # exp(800) is beyond float range: inf, not an OverflowError
    assert warnings == ['Perplexity: 1 of 3 samples had no scored token and are left out of the '
                        'averages.']


def test_psnr_refuses_nan_and_keeps_perfect_reconstructions():
    metric = ReconstructionPSNR()
    with pytest.raises(ValueError, match=r'ReconstructionPSNR: sample 3 has psnr=nan: its '
                                         r'reconstruction is not finite'):
        metric.process(None, [dict(psnr=20.), dict(psnr=float('nan'), sample_idx=3)])
    metric = ReconstructionPSNR()
    metric.process(None, [dict(psnr=math.inf), dict(psnr=math.inf)])
    assert metric.compute_metrics(metric.results) == dict(mean=math.inf, mse=math.inf)
    metric = ReconstructionPSNR()
    metric.process(None, [dict(psnr=10.), dict(psnr=math.inf)])
    res = metric.compute_metrics(metric.results)
    assert res['mean'] == math.inf and res['mse'] == pytest.approx(-10 * math.log10(0.05))
