"""Perplexity of a causal model's predictions (LVM)."""
import math
from typing import List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from ..registry import METRICS

__all__ = ['Perplexity']


@METRICS.register_module()
class Perplexity(BaseMetric):
    """Perplexity over the scored tokens of each predicted sample.

    Every data sample from the model (``LVM`` in ``predict`` mode) carries ``nll`` (the summed
    negative log-likelihood of its scored tokens) and ``num_tokens``. Reported:

    * ``ppl/mean``: the arithmetic mean of the per-sample perplexities ``exp(nll / num_tokens)``,
      the official LVM score (``eval_perplexity.py``);
    * ``ppl/token``: ``exp`` of the mean NLL over every scored token of the dataset (the usual
      language-model perplexity; equal to ``mean`` when all samples are alike);
    * ``ppl/nll``: that mean NLL in nats.

    Args:
        collect_device: ``'cpu'`` or ``'gpu'``, as every mmengine metric.
        prefix: Key prefix (default ``'ppl'``).
    """

    default_prefix = 'ppl'

    def __init__(self, collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'nll' not in sample or 'num_tokens' not in sample:
                raise KeyError('Perplexity: a predicted sample has no "nll"/"num_tokens"; the '
                               'model must be LVM (or return them) in predict mode.')
            if sample['num_tokens'] > 0:
                self.results.append((float(sample['nll']), int(sample['num_tokens'])))

    def compute_metrics(self, results: List[tuple]) -> dict:
        if not results:
            raise ValueError('Perplexity: no sample had a scored token.')
        total = sum(n for _, n in results)
        nll = sum(v for v, _ in results) / total
        mean = sum(math.exp(v / n) for v, n in results) / len(results)
        return dict(mean=mean, token=math.exp(nll), nll=nll)
