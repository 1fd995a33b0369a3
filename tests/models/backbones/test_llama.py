"""LLaMADecoder: transformers' parameter names and logits (parity), KV-cache decoding equals full
recompute, causality, exact sizes of every arch, with_cp, bf16 autocast, freezing, errors."""
import pytest
import torch
from mmpretrain.registry import MODELS

import visionllama_mm  # noqa: F401
from visionllama_mm.models.backbones import LLaMADecoder
from visionllama_mm.models.layers import Attention, KVCache, RotaryEmbedding, TransformerBlock

TINY = dict(embed_dims=64, hidden_dims=160, num_layers=3, num_heads=4)
VOCAB = 300
# parameter counts computed from EasyLM's LLAMA_STANDARD_CONFIGS (llama_model.py:39-229), rounded
RELEASED_PARAMS = {'debug': '2.5M', '100m': '117M', '300m': '291M', '600m': '648M', '1b': '1.15B',
                   '3b': '3.27B', '7b': '6.54B', '13b': '12.8B', '20b': '20.7B', '30b': '32.2B'}


def _hf_llama(arch=TINY, vocab=VOCAB, seed=0):
    import transformers  # a pinned test requirement: missing, the parity tests fail
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=arch['embed_dims'], intermediate_size=arch['hidden_dims'],
        num_hidden_layers=arch['num_layers'], num_attention_heads=arch['num_heads'],
        num_key_value_heads=arch['num_heads'], rms_norm_eps=1e-6, rope_theta=10000.,
        tie_word_embeddings=False, attn_implementation='sdpa', max_position_embeddings=512)
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # random norm weights too, so no parameter is a no-op
        for name, p in model.named_parameters():
            if 'norm' in name:
                p.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope='module')
def pair():
    hf = _hf_llama()
    ours = LLaMADecoder(arch=TINY, vocab_size=VOCAB).eval()
    ours.load_state_dict(hf.state_dict())  # strict: the same names and shapes
    return hf, ours


def test_state_dict_names_are_transformers(pair):
    hf, ours = pair
    assert sorted(ours.state_dict()) == sorted(hf.state_dict())
    assert 'model.layers.0.self_attn.q_proj.weight' in ours.state_dict()
    assert 'model.layers.2.mlp.down_proj.weight' in ours.state_dict()


def test_logits_equal_transformers(pair):
    hf, ours = pair
    ids = torch.randint(0, VOCAB, (2, 77), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(ids).logits
        out = ours(ids)
    assert out.shape == (2, 77, VOCAB)
    assert (out - ref).abs().max() <= 1e-4
    print(f'LLaMADecoder vs LlamaForCausalLM max |dlogits| = {(out - ref).abs().max():.2e}')


@pytest.mark.parametrize('capacity', [None, 40], ids=['growing', 'preallocated'])
def test_kv_cache_decoding_equals_full_recompute(pair, capacity):
    _, ours = pair
    ids = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = ours(ids)
        caches = ours.new_caches(capacity)
        parts = [ours(ids[:, :17], caches), ours(ids[:, 17:20], caches)]  # a prefix, a chunk
        parts += [ours(ids[:, t:t + 1], caches) for t in range(20, 40)]  # one token at a time
    assert caches[0].length == 40
    assert (torch.cat(parts, 1) - full).abs().max() <= 1e-5
    if capacity is not None:  # the preallocated buffers are full: one more position is refused
        assert caches[0].k.shape[-2] == capacity
        with pytest.raises(IndexError, match='out of bounds'), torch.no_grad():
            ours(ids[:, :1], caches)


def test_kv_cache_position_is_a_tensor(pair):
    """The stored length is a 0-dim tensor (the RoPE offset of the next token, no Python int in
    the forward); the prompt must fit the capacity; a cached non-causal query sees every stored
    key; a mask beside a filled cache is refused."""
    _, ours = pair
    caches = ours.new_caches(8)
    assert caches[0].offset() == 0 and caches[0].length == 0
    with torch.no_grad():
        ours(torch.zeros(1, 5, dtype=torch.long), caches)
        ours(torch.zeros(1, 1, dtype=torch.long), caches)
    pos = caches[0].offset()
    assert isinstance(pos, torch.Tensor) and pos.dim() == 0 and pos.dtype == torch.long
    assert caches[0].length == 6 and caches[0].k.shape == (1, 4, 8, 16)
    with pytest.raises(ValueError, match='exceed the capacity 8'):
        ours(torch.zeros(1, 9, dtype=torch.long), ours.new_caches(8))
    with pytest.raises(ValueError, match='capacity must be None or a positive int'):
        KVCache(0)
    attn = ours.model.layers[0].self_attn
    x = torch.randn(1, 4, 64, generator=torch.Generator().manual_seed(0))
    for capacity in (None, 6):
        cache = KVCache(capacity)
        with torch.no_grad():
            attn(x[:, :3], cache=cache)
            last = attn(x[:, 3:], cache=cache)
            assert torch.allclose(last, attn(x)[:, 3:], atol=1e-6)
            with pytest.raises(ValueError, match='attn_mask'):
                attn(x[:, :1], attn_mask=torch.ones(1, 5, dtype=torch.bool), cache=cache)


def test_causal(pair):
    _, ours = pair
    ids = torch.randint(0, VOCAB, (1, 30), generator=torch.Generator().manual_seed(3))
    changed = ids.clone()
    changed[0, 20] = (ids[0, 20] + 1) % VOCAB
    with torch.no_grad():
        a, b = ours(ids), ours(changed)
    assert torch.equal(a[:, :20], b[:, :20])
    assert (a[:, 20:] - b[:, 20:]).abs().max() > 1e-3


def test_rope_cache_is_not_filled_by_decoding(pair):
    _, ours = pair
    ours.rope._cache.clear()
    with torch.no_grad():
        caches = ours.new_caches()
        ours(torch.zeros(1, 5, dtype=torch.long), caches)
        for _ in range(100):
            ours(torch.zeros(1, 1, dtype=torch.long), caches)
    # the prompt's table (capacity 8); the decoding steps compute their row from the caches'
    # position tensor, outside the cache
    assert len(ours.rope.cached_keys()) == 1


def test_shared_layers_are_used():
    m = LLaMADecoder(arch=TINY, vocab_size=VOCAB)
    block = m.model.layers[0]
    assert type(block) is TransformerBlock and isinstance(block.self_attn, Attention)
    assert isinstance(m.rope, RotaryEmbedding) and m.rope.pairing == 'half' and m.rope.ndim == 1
    assert m.rope.theta == 10000.


@pytest.mark.parametrize('arch', sorted(set(RELEASED_PARAMS)))
def test_sizes(arch):
    n = LLaMADecoder.num_params(arch)
    released = RELEASED_PARAMS[arch]
    digits = len(released[:-1].partition('.')[2])
    unit = released[-1]
    assert f'{n / (1e6 if unit == "M" else 1e9):.{digits}f}{unit}' == released, (arch, n)


def test_num_params_counts_the_built_model():
    m = LLaMADecoder(arch='debug')
    assert sum(p.numel() for p in m.parameters()) == LLaMADecoder.num_params('debug') == 2_451_072
    with torch.device('meta'):
        big = LLaMADecoder(arch='300m')
    assert sum(p.numel() for p in big.parameters()) == LLaMADecoder.num_params('300m')


def test_init_is_normal_002():
    m = LLaMADecoder(arch=dict(embed_dims=256, hidden_dims=512, num_layers=1, num_heads=4))
    w = m.model.layers[0].mlp.up_proj.weight
    assert abs(w.std().item() - 0.02) < 1e-3 and w.abs().max() > 0.06  # not truncated at 2 std
    assert torch.equal(m.model.norm.weight, torch.ones(256))


def test_with_cp_same_gradients():
    torch.manual_seed(0)
    a = LLaMADecoder(arch=TINY, vocab_size=VOCAB)
    b = LLaMADecoder(arch=TINY, vocab_size=VOCAB, with_cp=True)
    b.load_state_dict(a.state_dict())
    ids = torch.randint(0, VOCAB, (2, 16))
    for m in (a, b):
        m.train()
        m(ids).logsumexp(-1).mean().backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), n


def test_bf16_autocast_trains(pair):
    _, ours = pair
    ids = torch.randint(0, VOCAB, (2, 24))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = ours.train()(ids)
    ours.eval()
    out.float().logsumexp(-1).mean().backward()
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in ours.parameters())
    ours.zero_grad(set_to_none=True)


def test_frozen_stages_and_hidden_output():
    m = LLaMADecoder(arch=TINY, vocab_size=VOCAB, frozen_stages=1, with_head=False)
    assert not m.model.embed_tokens.weight.requires_grad
    assert not any(p.requires_grad for p in m.model.layers[0].parameters())
    assert all(p.requires_grad for p in m.model.layers[1].parameters())
    assert m(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 64)
    assert m.get_layer_depth('model.layers.1.mlp.up_proj.weight') == (2, 5)


def test_registered_and_errors():
    m = MODELS.build(dict(type='LLaMADecoder', arch='debug'))
    assert m.vocab_size == 8292
    with pytest.raises(ValueError, match='unknown arch'):
        LLaMADecoder(arch='2b')
    with pytest.raises(ValueError, match='not divisible'):
        LLaMADecoder(arch=dict(embed_dims=64, hidden_dims=64, num_layers=1, num_heads=5))
    with pytest.raises(ValueError, match=r'token ids \(B, L\)'):
        m(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match='caches'):
        m(torch.zeros(1, 3, dtype=torch.long), caches=[])
