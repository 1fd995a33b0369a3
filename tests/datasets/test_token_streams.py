"""LVM token streams: the official base64 JSONL round trip, our uint16 shards, and token windows
that reproduce EasyLM's packing (``EasyLM/data.py``: one stream, targets shifted by one)."""
import json
import pickle

import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler, default_collate
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import visionllama_mm  # noqa: F401
from visionllama_mm.datasets import (LVM_BOS, LVM_EOS, LVM_VOCAB, OfficialTokenJsonlDataset,
                                     PackedTokenDataset, TokenStream, convert_official_jsonl,
                                     decode_tokens_b64, encode_tokens_b64, write_token_shard)


def easylm_batches(stream, batch_size, seq_len):
    """EasyLM ``JsonDataset.__iter__`` (data.py:L325-375) on a finite stream: (input, target)."""
    chunk, buffer = batch_size * seq_len, []
    for token in stream:
        buffer.append(int(token))
        while len(buffer) > chunk + 1:
            yield (np.array(buffer[:chunk]).reshape(batch_size, -1),
                   np.array(buffer[1:chunk + 1]).reshape(batch_size, -1))
            buffer = buffer[chunk:]


def sentences(n, seed=0, lo=3, hi=12):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 8192, rng.integers(lo, hi)) for _ in range(n)]


def test_base64_round_trip_and_official_bytes():
    # int32 little-endian, as the official np.frombuffer(b64decode(s), int32) reads it back
    assert encode_tokens_b64([1, 256]) == 'AQAAAAABAAA='
    ids = np.random.default_rng(0).integers(0, 8192, 777)
    back = decode_tokens_b64(encode_tokens_b64(ids))
    assert back.dtype == np.int32 and np.array_equal(back, ids)
    assert decode_tokens_b64(encode_tokens_b64([])).size == 0
    with pytest.raises(ValueError, match='not base64'):
        decode_tokens_b64('@@@@')
    with pytest.raises(ValueError, match='whole number of int32'):
        decode_tokens_b64('AQA=')
    with pytest.raises(ValueError, match='integer ids'):
        encode_tokens_b64(np.ones(3))


def test_shard_windows_reproduce_easylm_packing(tmp_path):
    sents = sentences(40)
    meta = write_token_shard(str(tmp_path / 's'), sents, tokens_per_image=4, tokenizer='t',
                             seed=3)
    tokens, offsets = np.load(tmp_path / 's/tokens.npy'), np.load(tmp_path / 's/offsets.npy')
    assert tokens.dtype == np.uint16 and offsets.dtype == np.int64
    assert meta == json.loads((tmp_path / 's/meta.json').read_text())
    assert meta['num_sentences'] == 40 and meta['num_tokens'] == tokens.size == \
        sum(s.size + 2 for s in sents)
    # every sentence once, wrapped in BOS/EOS, in a seeded shuffled order
    written = [tokens[a:b] for a, b in zip(offsets, list(offsets[1:]) + [tokens.size])]
    assert all(w[0] == LVM_BOS and w[-1] == LVM_EOS for w in written)
    order = [next(i for i, s in enumerate(sents) if np.array_equal(w[1:-1], s)) for w in written]
    assert sorted(order) == list(range(40)) and order != list(range(40))
    write_token_shard(str(tmp_path / 's2'), sents, seed=3)
    assert np.array_equal(np.load(tmp_path / 's2/tokens.npy'), tokens)

    L, B = 16, 2
    ds = PackedTokenDataset(str(tmp_path / 's'), context_length=L)
    assert len(ds) == (tokens.size - 1) // L and ds.metainfo['tokenizer'] == 't'
    item = ds[0]['inputs']
    assert item.dtype == torch.long and item.shape == (L + 1, )
    loader = torch.utils.data.DataLoader(ds, batch_size=B, collate_fn=default_collate)
    ours = [(b['inputs'][:, :-1].numpy(), b['inputs'][:, 1:].numpy()) for b in loader]
    ref = list(easylm_batches(tokens, B, L))
    # EasyLM waits for one token more than the last window needs; the rest is identical
    assert len(ref) >= len(ours) - 1 and len(ref) > 5
    for (x, y), (rx, ry) in zip(ours, ref):
        assert np.array_equal(x, rx) and np.array_equal(y, ry)
    # windows overlap by one token and sentences run across them (no padding, no reset)
    assert ds[1]['inputs'][0] == ds[0]['inputs'][-1]
    crossing = [i for i in range(len(ds)) if (ds[i]['inputs'][1:-1] == LVM_BOS).any()]
    assert len(crossing) > len(ds) // 2
    assert ds[-1]['inputs'].equal(ds[len(ds) - 1]['inputs'])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_several_shards_are_one_stream_and_work_with_the_runner(tmp_path):
    a, b = sentences(7, seed=1), sentences(9, seed=2)
    write_token_shard(str(tmp_path / 'a'), a, seed=None)
    write_token_shard(str(tmp_path / 'b'), b, seed=None)
    # a directory of tokens_*/offsets_* pairs with one meta.json
    (tmp_path / 'pairs').mkdir()
    for name in ('a', 'b'):
        for kind in ('tokens', 'offsets'):
            (tmp_path / 'pairs' / f'{kind}_{name}.npy').write_bytes(
                (tmp_path / name / f'{kind}.npy').read_bytes())
    meta = json.loads((tmp_path / 'a/meta.json').read_text())
    meta.update(num_sentences=16, num_tokens=sum(s.size + 2 for s in a + b))
    (tmp_path / 'pairs/meta.json').write_text(json.dumps(meta))

    whole = np.concatenate([np.r_[LVM_BOS, s, LVM_EOS] for s in a + b])
    for root in ([str(tmp_path / 'a'), str(tmp_path / 'b')], str(tmp_path / 'pairs')):
        stream = TokenStream(root)
        assert len(stream) == whole.size and stream.num_sentences == 16
        assert np.array_equal(stream.read(0, len(stream)), whole)
        assert np.array_equal(stream.sentence(7)[1:-1], b[0])
        ds = PackedTokenDataset(root, context_length=10)
        assert all(np.array_equal(ds[i]['inputs'], whole[10 * i:10 * i + 11])
                   for i in range(len(ds)))
    # the dataset pickles without its memory maps (data-loader workers reopen them)
    assert len(pickle.dumps(ds)) < 4096
    assert pickle.loads(pickle.dumps(ds))[3]['inputs'].equal(ds[3]['inputs'])

    init_default_scope('mmpretrain')
    loader = Runner.build_dataloader(dict(
        batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='PackedTokenDataset', data_root=str(tmp_path / 'pairs'),
                     context_length=10)))
    batches = [b['inputs'] for b in loader]
    assert batches[0].shape == (4, 11) and sum(len(x) for x in batches) == len(ds)
    seen = sorted(tuple(r.tolist()) for x in batches for r in x)
    assert seen == sorted(tuple(ds[i]['inputs'].tolist()) for i in range(len(ds)))
    assert isinstance(loader.sampler, DefaultSampler)


def test_official_jsonl_reader_and_converter(tmp_path):
    sents = sentences(12, seed=4)
    path = tmp_path / 'official.jsonl'
    path.write_text(''.join(json.dumps({'tokens': encode_tokens_b64(s)}) + '\n' for s in sents))
    official = OfficialTokenJsonlDataset(str(path), context_length=8)
    convert_official_jsonl(str(path), str(tmp_path / 'shard'), seed=None, tokens_per_image=4)
    packed = PackedTokenDataset(str(tmp_path / 'shard'), context_length=8)
    assert len(official) == len(packed) > 3
    assert all(official[i]['inputs'].equal(packed[i]['inputs']) for i in range(len(packed)))
    bare = OfficialTokenJsonlDataset([str(path), str(path)], context_length=8, add_bos_eos=False)
    assert np.array_equal(bare.tokens, np.concatenate(sents + sents))
    # the converter shuffles by default, the same sentences
    convert_official_jsonl(str(path), str(tmp_path / 'shuffled'), seed=0)
    assert sorted(TokenStream(str(tmp_path / 'shuffled')).sentence(i)[1:-1].tolist()
                  for i in range(12)) == sorted(s.tolist() for s in sents)


def _shard(root, n=6):
    write_token_shard(str(root), sentences(n, seed=5), seed=None)
    return str(root)


def test_clear_errors(tmp_path):
    good = _shard(tmp_path / 'good')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        PackedTokenDataset(str(tmp_path / 'nowhere'))
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty/meta.json').write_text((tmp_path / 'good/meta.json').read_text())
    with pytest.raises(FileNotFoundError, match='no tokens.npy'):
        PackedTokenDataset(str(tmp_path / 'empty'))
    bad = _shard(tmp_path / 'no_meta')
    (tmp_path / 'no_meta/meta.json').unlink()
    with pytest.raises(FileNotFoundError, match='meta.json is missing'):
        PackedTokenDataset(bad)
    bad = _shard(tmp_path / 'no_offsets')
    (tmp_path / 'no_offsets/offsets.npy').unlink()
    with pytest.raises(FileNotFoundError, match='no offsets.npy beside it'):
        PackedTokenDataset(bad)
    bad = _shard(tmp_path / 'int32')
    np.save(tmp_path / 'int32/tokens.npy', np.load(tmp_path / 'int32/tokens.npy').astype(np.int32))
    with pytest.raises(ValueError, match='must be a 1-D uint16 array, got int32'):
        PackedTokenDataset(bad, context_length=4)
    bad = _shard(tmp_path / 'count')
    meta = json.loads((tmp_path / 'count/meta.json').read_text())
    (tmp_path / 'count/meta.json').write_text(json.dumps({**meta, 'num_tokens': 1}))
    with pytest.raises(ValueError, match='its meta.json says 1 in 6'):
        PackedTokenDataset(bad, context_length=4)
    bad = _shard(tmp_path / 'big_id')
    tokens = np.load(tmp_path / 'big_id/tokens.npy', mmap_mode='r+')
    tokens[9] = LVM_VOCAB
    tokens.flush()
    del tokens
    ds = PackedTokenDataset(bad, context_length=4)
    ds[0]
    with pytest.raises(ValueError, match=r'id 8292 at stream position 9 .* >= vocab_size 8292'):
        ds[2]
    other = str(tmp_path / 'other')
    write_token_shard(other, sentences(3), bos=8200, eos=8201, pad=8202)
    with pytest.raises(ValueError, match="disagrees with .* on {'bos': \\(8192, 8200\\)"):
        PackedTokenDataset([good, other], context_length=4)
    with pytest.raises(ValueError, match="other ids than the dataset expects: {'bos'"):
        PackedTokenDataset(good, context_length=4, bos_id=8200)
    with pytest.raises(ValueError, match='fewer than one window'):
        PackedTokenDataset(good, context_length=10_000)
    with pytest.raises(FileExistsError, match='already holds a shard'):
        write_token_shard(good, sentences(2))
    with pytest.raises(ValueError, match=r'sentence 1 holds ids .*outside the codes \[0, 8192\)'):
        write_token_shard(str(tmp_path / 'w'), [np.arange(3), np.array([1, 8192])])
    with pytest.raises(ValueError, match='must be distinct'):
        write_token_shard(str(tmp_path / 'w2'), sentences(2), eos=LVM_BOS)
    line = tmp_path / 'bad.jsonl'
    line.write_text(json.dumps({'tokens': encode_tokens_b64([1, 2])}) + '\n{"text": 1}\n')
    with pytest.raises(ValueError, match=r'bad.jsonl:2: .*no "tokens" field'):
        OfficialTokenJsonlDataset(str(line), context_length=2)
    line.write_text(json.dumps({'tokens': encode_tokens_b64([1, 9000])}) + '\n')
    with pytest.raises(ValueError, match='sentence 1: ids 1..9000 outside'):
        OfficialTokenJsonlDataset(str(line), context_length=2)
