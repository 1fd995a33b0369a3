"""Perplexity per source and per sentence type over one mixed validation set: token windows of a
shard and image sentences of a JSON-lines file, tagged by ``SourceMixDataset`` and grouped by the
``Perplexity`` metric (the per-sample perplexities are set by hand, so the means are known)."""
import json
import math

import numpy as np
import pytest
from PIL import Image

from visionllama_mm.datasets import SourceMixDataset, write_token_shard
from visionllama_mm.evaluation.perplexity import Perplexity


@pytest.fixture(scope='module')
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp('mix')
    # 3 sentences of 4 codes, each written as bos, codes, eos: 18 ids -> (18 - 1) // 5 = 3 windows
    rng = np.random.default_rng(0)
    write_token_shard(str(root / 'shard'), [rng.integers(0, 16, 4) for _ in range(3)], bos=16,
                      eos=17, pad=18, vocab_size=32, codebook=16, tokens_per_image=4, seed=None)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f'{i}.png')
    lines = [{'images': ['0.png', '1.png'], 'type': 'sequence'},
             {'input': ['0.png', '1.png'], 'target': ['2.png']}]
    (root / 'sentences.jsonl').write_text(''.join(json.dumps(x) + '\n' for x in lines))
    return SourceMixDataset(datasets=dict(
        shard=dict(type='PackedTokenDataset', data_root=str(root / 'shard'), context_length=5,
                   bos_id=16, eos_id=17, vocab_size=32),
        photos=dict(type='VisualSentenceDataset', ann_file='sentences.jsonl',
                    data_root=str(root), image_size=8)))


def test_every_item_carries_its_source_and_type(mixed):
    items = [mixed[i] for i in range(len(mixed))]
    assert len(items) == 5
    meta = [it['data_samples'].metainfo for it in items]
    assert [m['source'] for m in meta] == ['shard'] * 3 + ['photos'] * 2
    assert [m['sample_idx'] for m in meta] == [0, 1, 2, 3, 4]
    assert [m.get('sentence_type') for m in meta] == [None] * 3 + ['sequence', 'perplexity']
    assert [tuple(it['inputs'].shape) for it in items] == [(6, )] * 3 + [(2, 3, 8, 8), (3, 3, 8, 8)]
    assert meta[4]['num_target_images'] == 1
    assert mixed.metainfo == dict(sources=['shard', 'photos'],
                                  source_sizes=dict(shard=3, photos=2))


def test_metric_reports_each_source_and_type(mixed):
    # per-sample perplexities 2, 4, 6 (shard), 3 and 9 (photos); nll = num_tokens * log(ppl)
    ppl, num = [2., 4., 6., 3., 9.], [5, 5, 5, 32, 4]
    samples = []
    for i, (p, n) in enumerate(zip(ppl, num)):
        sample = mixed[i]['data_samples']
        sample.set_data(dict(nll=n * math.log(p), num_tokens=n))
        samples.append(sample.to_dict())
    metric = Perplexity()
    metric.process(None, samples[:2])
    metric.process(None, samples[2:])
    out = metric.compute_metrics(metric.results)
    assert set(out) == {'mean', 'token', 'nll', 'shard', 'photos', 'type/sequence',
                        'type/perplexity'}
    assert out['mean'] == pytest.approx(24 / 5)  # (2 + 4 + 6 + 3 + 9) / 5
    assert out['shard'] == pytest.approx(4.)  # (2 + 4 + 6) / 3
    assert out['photos'] == pytest.approx(6.)  # (3 + 9) / 2
    assert out['type/sequence'] == pytest.approx(3.)
    assert out['type/perplexity'] == pytest.approx(9.)
    nll = (5 * math.log(48) + 32 * math.log(3) + 4 * math.log(9)) / 51
    assert out['nll'] == pytest.approx(nll)
    assert out['token'] == pytest.approx(math.exp(nll))


def test_a_source_named_like_an_overall_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"SourceMixDataset: a source name must be a non-empty "
                                         r"string without \"/\" .* got 'mean'"):
        SourceMixDataset(datasets=dict(mean=dict(type='PackedTokenDataset', data_root='x')))
    metric = Perplexity()
    with pytest.raises(ValueError, match=r"Perplexity, sample 7: .* got 'a/b'"):
        metric.process(None, [dict(nll=1., num_tokens=2, source='a/b', sample_idx=7)])
