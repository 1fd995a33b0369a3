"""LVM model: both loss normalisations, perplexity (official span and formula), the metric, the
sampler's constraints, KV-cache generation = greedy full recompute, the data preprocessor."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement
from mmpretrain.registry import METRICS, MODELS

import visionllama_mm  # noqa: F401
from visionllama_mm.models.lvm import LVM, sample_next_token

TINY = dict(embed_dims=32, hidden_dims=64, num_layers=2, num_heads=2)


def _lvm(**kwargs):
    torch.manual_seed(0)
    return LVM(backbone=dict(type='LLaMADecoder', arch=TINY), **kwargs).eval()


def _ids(b, n, seed=0, high=8192):
    return torch.randint(0, high, (b, n), generator=torch.Generator().manual_seed(seed))


def test_loss_normalisations():
    m = _lvm()
    windows = _ids(3, 17)
    windows[1, 10:] = m.pad_id  # a short row: padded targets are not scored
    logits = m.backbone(windows[:, :-1])
    nll = F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten(), reduction='none')
    nll = nll.view(3, 16)
    scored = windows[:, 1:] != m.pad_id
    token_mean = (nll * scored).sum() / scored.sum()
    row_mean = ((nll * scored).sum(1) / scored.sum(1)).mean()
    assert torch.allclose(m(windows, mode='loss')['loss'], token_mean, atol=1e-5)
    m.loss_norm = 'row'
    assert torch.allclose(m(windows, mode='loss')['loss'], row_mean, atol=1e-5)
    assert not torch.allclose(token_mean, row_mean, atol=1e-4)  # the two differ here


def test_loss_accuracy_and_untrained_value():
    m = _lvm(log_accuracy=True)
    out = m(_ids(2, 65), mode='loss')
    assert set(out) == {'loss', 'accuracy'} and 0 <= out['accuracy'] <= 1
    assert abs(out['loss'].item() - math.log(8292)) < 0.1  # N(0, 0.02) init: near uniform


def test_predict_scores_the_target_images_only():
    """Official protocol (inference.py): ids = input ‖ target, no BOS; the target tokens are
    predicted by the logits at [len(input) - 1 : -1]; PPL = exp(mean NLL)."""
    m = _lvm()
    seq = _ids(1, 5 * 16)  # 5 images of 16 tokens, the last 2 are the target
    sample = BaseDataElement(metainfo=dict(num_images=5, num_target_images=2))
    pred = m(seq, [sample], mode='predict')[0]
    with torch.no_grad():
        logits = m.backbone(seq[:, :-1])
    logp = logits.log_softmax(-1)[0, 3 * 16 - 1:]
    nll = -logp.gather(-1, seq[0, 3 * 16:, None]).sum()
    assert pred.num_tokens == 32
    assert abs(pred.nll - nll.item()) < 1e-3
    assert abs(pred.ppl - math.exp(nll.item() / 32)) < 1e-3 * pred.ppl


def test_perplexity_metric_is_the_official_mean():
    metric = METRICS.build(dict(type='Perplexity'))
    metric.process(None, [dict(nll=2.0 * 10, num_tokens=10), dict(nll=4.0 * 30, num_tokens=30)])
    res = metric.compute_metrics(metric.results)
    assert res['mean'] == pytest.approx((math.exp(2) + math.exp(4)) / 2)
    assert res['token'] == pytest.approx(math.exp(140 / 40))
    assert res['nll'] == pytest.approx(3.5)


def test_preprocessor_pads_sequences_of_different_lengths():
    m = _lvm()
    batch = m.data_preprocessor(dict(inputs=[_ids(1, 20)[0], _ids(1, 12, seed=1)[0]]))
    assert isinstance(batch['inputs'], list)
    preds = m(**batch, mode='predict')
    assert [p.num_tokens for p in preds] == [19, 11]
    alone = m(_ids(1, 12, seed=1), mode='predict')[0]
    assert abs(alone.nll - preds[1].nll) < 1e-3  # right padding does not change a causal score


def test_sampler_constraints():
    g = torch.Generator().manual_seed(0)
    logits = torch.zeros(4, 8292)
    logits[:, 8192:] = 100.  # the specials would win without the codes-only constraint
    ids = torch.stack([sample_next_token(logits, allowed=8192, generator=g) for _ in range(50)])
    assert ids.max() < 8192
    logits = torch.linspace(0, 10, 100).repeat(2, 1)
    top = torch.stack([sample_next_token(logits, top_k=3, generator=g) for _ in range(200)])
    assert set(top.unique().tolist()) <= {97, 98, 99}
    probs = logits[0].softmax(-1)  # top-p 0.5 keeps the smallest head with mass >= 0.5
    keep = int((probs.sort(descending=True).values.cumsum(0) < 0.5).sum()) + 1
    nucleus = torch.stack([sample_next_token(logits, top_k=0, top_p=0.5, generator=g)
                           for _ in range(200)])
    assert set(nucleus.unique().tolist()) <= set(range(100 - keep, 100))
    assert torch.equal(sample_next_token(logits, temperature=0), torch.tensor([99, 99]))


def test_generate_exact_length_and_equal_to_full_recompute():
    m = _lvm()
    prompt = _ids(2, 24)
    out = m.generate(prompt, 40, temperature=0)  # greedy: deterministic
    assert out.shape == (2, 40) and out.max() < 8192
    seq = prompt
    with torch.no_grad():
        for _ in range(40):  # no cache: the whole sequence every step
            logits = m.backbone(seq)[:, -1]
            logits[:, 8192:] = float('-inf')
            seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, seq[:, 24:])
    sampled = m.generate(prompt, 10, generator=torch.Generator().manual_seed(0))
    again = m.generate(prompt, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, again)


def test_errors():
    m = _lvm()
    with pytest.raises(ValueError, match='loss_norm'):
        _lvm(loss_norm='mean')
    with pytest.raises(ValueError, match='bos_id'):
        _lvm(bos_id=5)
    with pytest.raises(ValueError, match='tokenizer'):
        m(torch.rand(1, 2, 3, 32, 32), mode='loss')
    with pytest.raises(ValueError, match='invalid mode'):
        m(_ids(1, 4), mode='train')
    with pytest.raises(ValueError, match='max_new_tokens'):
        m.generate(_ids(1, 4), 0)
    with pytest.raises(ValueError, match='no context'):
        m(_ids(1, 32), [BaseDataElement(metainfo=dict(num_images=2, num_target_images=2))],
          mode='predict')
    assert isinstance(MODELS.build(dict(type='LVM', backbone=dict(type='LLaMADecoder'))), LVM)


def test_shared_special_ids_are_refused():
    """Targets equal to pad_id are not scored: pad_id = eos_id would drop every eos target."""
    with pytest.raises(ValueError) as err:
        _lvm(pad_id=8193)
    assert str(err.value) == ('LVM: bos_id, eos_id and pad_id must differ, got 8192, 8193, 8193 '
                              '(targets equal to pad_id are left out of the loss).')
