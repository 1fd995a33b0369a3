"""Perplexity of a causal model's predictions (LVM)."""
import logging
import math
from typing import List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ..datasets.token_streams import check_source_name
from ..registry import METRICS

__all__ = ['Perplexity']


def _scalar(value, name: str, where: str) -> float:
    """A python/numpy/one-element-tensor number -> float; anything else is named."""
    try:
        if hasattr(value, 'numel') and value.numel() != 1:
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        shape = tuple(getattr(value, 'shape', ()))
        raise ValueError(f'Perplexity: {name} of {where} must be one number, got '
                         f'{type(value).__name__}{" of shape " + str(shape) if shape else ""}.'
                         ) from None


@METRICS.register_module()
class Perplexity(BaseMetric):
    """Perplexity over the scored tokens of each predicted sample.

    Every data sample from the model (``LVM`` in ``predict`` mode) carries ``nll`` (the summed
    negative log-likelihood of its scored tokens) and ``num_tokens``. Reported:

    * ``ppl/mean``: the arithmetic mean of the per-sample perplexities ``exp(nll / num_tokens)``,
      the official LVM score (``eval_perplexity.py``);
    * ``ppl/token``: ``exp`` of the mean NLL over every scored token of the dataset (the usual
      language-model perplexity; equal to ``mean`` when all samples are alike);
    * ``ppl/nll``: that mean NLL in nats;
    * ``ppl/<source>``: the mean per-sample perplexity of each source, for samples whose metainfo
      names one (``SourceMixDataset`` tags every item: one run over a mixed validation set gives
      the per-source scores);
    * ``ppl/type/<sentence_type>``: the same per sentence type, for samples whose metainfo gives
      it (visual sentences: ``sequence``, ``video``, ``perplexity`` ...).

    Samples without a scored token are left out of all three, with a warning that counts them;
    a non-finite or negative NLL or a negative token count (a diverged model, a broken data
    sample) is an error naming the sample, never folded into a NaN average.

    Args:
        collect_device: ``'cpu'`` or ``'gpu'``, as every mmengine metric.
        prefix: Key prefix (default ``'ppl'``).
    """

    default_prefix = 'ppl'

    def __init__(self, collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for i, sample in enumerate(data_samples):
            if 'nll' not in sample or 'num_tokens' not in sample:
                raise KeyError('Perplexity: a predicted sample has no "nll"/"num_tokens"; the '
                               'model must be LVM (or return them) in predict mode.')
            idx = sample.get('sample_idx')
            where = f'sample {idx}' if idx is not None else f'sample {i} of the batch'
            nll = _scalar(sample['nll'], 'nll', where)
            num = _scalar(sample['num_tokens'], 'num_tokens', where)
            if num < 0 or num != int(num):
                raise ValueError(f'Perplexity: num_tokens of {where} must be a count >= 0, got '
                                 f'{num:g}.')
            num = int(num)
            source, stype = sample.get('source'), sample.get('sentence_type')
            if source is not None:
                check_source_name(source, f'Perplexity, {where}')
            if num > 0 and (not math.isfinite(nll) or nll < -1e-4 * num):
                raise ValueError(f'Perplexity: {where} has nll={nll:g} over {num} tokens; a '
                                 f'negative log-likelihood must be finite and >= 0 (a NaN or '
                                 f'inf comes from non-finite logits: the model diverged).')
            self.results.append((max(nll, 0.), num, source, stype))

    def compute_metrics(self, results: List[tuple]) -> dict:
        scored = [r for r in results if r[1] > 0]
        if not scored:
            raise ValueError(f'Perplexity: none of the {len(results)} samples had a scored '
                             'token (num_tokens 0 everywhere); there is nothing to average.')
        if len(scored) < len(results):
            print_log(f'Perplexity: {len(results) - len(scored)} of {len(results)} samples had no '
                      'scored token and are left out of the averages.', logger='current',
                      level=logging.WARNING)
        total = sum(r[1] for r in scored)
        nll = sum(r[0] for r in scored) / total

        def exp(x: float) -> float:  # a perplexity beyond float range is inf, not an error
            return math.exp(x) if x < 709 else math.inf

        def mean_ppl(rows) -> float:  # the official score: the mean of per-sample perplexities
            return sum(exp(r[0] / r[1]) for r in rows) / len(rows)

        metrics = dict(mean=mean_ppl(scored), token=exp(nll), nll=nll)
        for column, prefix in ((2, ''), (3, 'type/')):
            for name in sorted({r[column] for r in scored if r[column] is not None}):
                metrics[prefix + name] = mean_ppl([r for r in scored if r[column] == name])
        return metrics
