"""Image-text data: streamed webdataset shards (split between readers, each sample once per pass,
clear failures), JSON-lines / CSV annotation files, and the CLIP tokenizer transform."""
import io
import json
import logging
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

import visionllama_mm  # noqa: F401
from visionllama_mm.datasets import (ImageTextDataset, TokenizeText, WebDatasetImageText,
                                     expand_shards)


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buf, format='PNG')
    return buf.getvalue()


def write_shard(path, samples):
    """samples: [(key, {ext: bytes})] written in order."""
    with tarfile.open(path, 'w') as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f'{key}.{ext}')
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


@pytest.fixture
def shards(tmp_path):
    paths = []
    for s in range(4):
        paths.append(write_shard(tmp_path / f'train-{s:03d}.tar', [
            (f'{s}{i:02d}', {'png': _png(10 * s + i), 'txt': f'caption {s} {i}'.encode()})
            for i in range(5)]))
    return tmp_path, paths


def test_expand_shards(tmp_path):
    assert expand_shards('a-{008..011}.tar') == [f'a-{i:03d}.tar' for i in range(8, 12)]
    assert expand_shards('{x,y}/s-{0..1}.tar') == ['x/s-0.tar', 'x/s-1.tar', 'y/s-0.tar',
                                                   'y/s-1.tar']
    for name in ('b.tar', 'a.tar'):
        (tmp_path / name).write_bytes(b'')
    assert expand_shards(str(tmp_path / '*.tar')) == [str(tmp_path / 'a.tar'),
                                                      str(tmp_path / 'b.tar')]
    assert expand_shards(str(tmp_path / '{b,a}*.tar')) == [str(tmp_path / 'b.tar'),
                                                           str(tmp_path / 'a.tar')]


def test_webdataset_streams_each_sample_once_per_pass_with_two_workers(shards):
    root, _ = shards
    ds = WebDatasetImageText('train-{000..003}.tar', data_root=str(root), shuffle_buffer=4,
                             pipeline=[dict(type='TokenizeText', context_length=8),
                                       dict(type='PackInputs', algorithm_keys=['text_tokens'])])
    assert len(ds) == 20
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2,
                                         collate_fn=lambda b: b, persistent_workers=True)
    passes = []
    for _ in range(2):
        seen = [s['data_samples'].sample_idx for batch in loader for s in batch]
        assert sorted(seen) == sorted(f'train-{s:03d}.tar/{s}{i:02d}' for s in range(4)
                                      for i in range(5))
        passes.append(seen)
    assert passes[0] != passes[1]  # shard order and buffer reshuffled each pass
    # the order is a function of (seed, epoch): a run resumed at epoch 1 (set_epoch) reads what
    # the uninterrupted run read in its second pass

    def read(**kwargs):
        return WebDatasetImageText('train-{000..003}.tar', data_root=str(root), shuffle_buffer=4,
                                   seed=3, **kwargs)

    def ids(dataset):
        return [s['sample_idx'] for s in dataset]

    run = read()
    first, second = ids(run), ids(run)
    resumed = read()
    resumed.set_epoch(1)
    assert ids(resumed) == second != first and sorted(second) == sorted(first)
    sample = next(iter(ds))
    assert sample['inputs'].shape == (3, 8, 8)
    assert sample['data_samples'].text_tokens.shape == (8, )


def test_webdataset_clear_failures(tmp_path, shards):
    root, paths = shards
    with pytest.raises(FileNotFoundError, match=r'1 of 5 shards do not exist'):
        WebDatasetImageText('train-{000..004}.tar', data_root=str(root))
    ds = WebDatasetImageText(paths[:1], shuffle=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2, collate_fn=list)
    with pytest.raises(RuntimeError, match=r'1 shards for 2 readers \(1 ranks x 2 workers\)'):
        list(loader)
    bad = write_shard(tmp_path / 'bad.tar', [
        ('a', {'png': _png(1), 'txt': b'ok'}), ('b', {'png': _png(2)}),  # no caption: skipped
        ('c', {'json': b'{}', 'txt': b'no image'}), ('d', {'png': b'not a png', 'txt': b'x'})])
    ds = WebDatasetImageText(bad, shuffle=False)
    it = iter(ds)
    assert next(it)['text'] == 'ok'
    with pytest.raises(ValueError, match=r'bad.tar: member d.png is not a readable image'):
        next(it)
    ok = write_shard(tmp_path / 'skips.tar', [('a', {'png': _png(1), 'txt': b'ok'}),
                                              ('b', {'png': _png(2)})])
    from mmengine.logging import MMLogger
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        assert [s['text'] for s in WebDatasetImageText(ok, shuffle=False)] == ['ok']
    finally:
        logger.removeHandler(handler)
    assert any('skips.tar: skipped 1 samples without an image' in r.getMessage()
               for r in records)
    twice = write_shard(tmp_path / 'twice.tar', [('a', {'png': _png(1), 'txt': b'ok'}),
                                                 ('a', {'txt': b'again'})])
    with pytest.raises(ValueError, match=r'shard .*twice.tar: a.txt: duplicate file name'):
        list(WebDatasetImageText(twice, shuffle=False))


def test_image_text_dataset_jsonl_and_csv(tmp_path):
    (tmp_path / 'img').mkdir()
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(tmp_path / 'img' / 'a.png')
    (tmp_path / 'ann.jsonl').write_text(json.dumps({'image': 'a.png', 'caption': 'a cat'}) +
                                        '\n\n' + json.dumps({'image': 'a.png',
                                                             'caption': ['x', 'y']}) + '\n')
    pipeline = [dict(type='LoadImageFromFile'), dict(type='TokenizeText', context_length=8),
                dict(type='PackInputs', algorithm_keys=['text_tokens'])]
    ds = ImageTextDataset('ann.jsonl', data_root=str(tmp_path), data_prefix='img',
                          pipeline=pipeline)
    assert len(ds) == 2 and ds[0]['inputs'].shape == (3, 6, 6)
    (tmp_path / 'ann.csv').write_text('filepath,title\na.png,"a cat, sitting"\n')
    ds = ImageTextDataset('ann.csv', data_root=str(tmp_path), data_prefix='img',
                          image_key='filepath', text_key='title')
    assert ds.get_data_info(0)['text'] == 'a cat, sitting'
    (tmp_path / 'bad.jsonl').write_text('{"image": "a.png", "caption": "ok"}\n{oops\n')
    with pytest.raises(ValueError, match=r'bad.jsonl:2: not a JSON object'):
        ImageTextDataset('bad.jsonl', data_root=str(tmp_path))
    (tmp_path / 'nokey.jsonl').write_text('{"image": "a.png", "text": "ok"}\n')
    with pytest.raises(ValueError, match=r"nokey.jsonl:1: no caption .*text_key='caption'"):
        ImageTextDataset('nokey.jsonl', data_root=str(tmp_path))


def test_tokenize_text_matches_open_clip():
    import open_clip
    out = TokenizeText(context_length=77).transform({'text': 'A Photo of the number Seven.'})
    assert np.array_equal(out['text_tokens'],
                          open_clip.tokenize(['A Photo of the number Seven.'])[0].numpy())
    with pytest.raises(ValueError, match='has no caption'):
        TokenizeText().transform({'text': None, 'sample_idx': 3})
