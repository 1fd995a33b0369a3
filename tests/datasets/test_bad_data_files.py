"""Bad data files are named (path, member, index) at the first moment they can be known: listed
files that are missing or empty before the first iteration, images that do not decode when they
are loaded, broken webdataset shards and token files at construction or when read."""
import glob
import io
import json
import os
import re
import tarfile

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

import visionllama_mm  # noqa: F401
from visionllama_mm.datasets import (CheckedLoadImageFromFile, ImageTextDataset,
                                     OfficialTokenJsonlDataset, PackedTokenDataset,
                                     VisualSentenceDataset, WebDatasetImageText,
                                     use_checked_image_loading, write_token_shard)
from visionllama_mm.datasets.checks import check_data_files
from visionllama_mm.engine.runner import Runner
from .test_image_text import write_shard


def _encoded(fmt: str, value: int = 100, size: int = 16) -> bytes:
    rng = np.random.RandomState(value)
    buf = io.BytesIO()
    Image.fromarray(rng.randint(0, 255, (size, size, 3), np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def _loader(dataset: dict):
    return Runner.build_dataloader(dict(dataset=dataset, batch_size=1, num_workers=0,
                                        sampler=dict(type='DefaultSampler', shuffle=False)))


# --------------------------------------------------------------------------------------------
# Image files: checked loader and the build-time stat pass
# --------------------------------------------------------------------------------------------
def test_checked_loader_names_the_image_and_sample(tmp_path):
    files = {'good.jpg': _encoded('JPEG'), 'trailer.jpg': _encoded('JPEG') + b'CAMERA' * 50,
             'empty.jpg': b'', 'text.jpg': b'hello, not an image\n',
             'cut.jpg': _encoded('JPEG')[:300], 'cut.png': _encoded('PNG')[:400]}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    load = CheckedLoadImageFromFile()

    def run(name, idx=7):
        return load(dict(img_path=str(tmp_path / name), sample_idx=idx))

    from mmcv.transforms import LoadImageFromFile
    stock = LoadImageFromFile()(dict(img_path=str(tmp_path / 'good.jpg')))
    assert np.array_equal(run('good.jpg')['img'], stock['img'])  # same pixels as the stock one
    assert run('trailer.jpg')['img'].shape == (16, 16, 3)  # bytes after the end marker are fine
    cases = {
        'empty.jpg': r'sample 7: image .*empty.jpg is empty \(0 bytes\)',
        'text.jpg': r"sample 7: image .*text.jpg is not a readable image \(20 bytes starting "
                    r"b'hello, not a'",
        'cut.jpg': r'sample 7: image .*cut.jpg is truncated or corrupt \(300 bytes, the end marker',
        'cut.png': r'sample 7: image .*cut.png is truncated or corrupt \(400 bytes',
    }
    for name, pattern in cases.items():
        with pytest.raises(ValueError, match='CheckedLoadImageFromFile: ' + pattern):
            run(name)
    with pytest.raises(FileNotFoundError, match=r'sample 3: image .*nowhere.jpg does not exist'):
        run('nowhere.jpg', idx=3)
    assert CheckedLoadImageFromFile(ignore_empty=True)(
        dict(img_path=str(tmp_path / 'empty.jpg'))) is None  # the stock option is kept
    # registered in every toolbox, so the stock tools build it from our configs
    from mmdet.registry import TRANSFORMS as DET
    from mmpretrain.registry import TRANSFORMS as PRETRAIN
    from mmseg.registry import TRANSFORMS as SEG
    for registry in (PRETRAIN, SEG, DET):
        assert registry.get('CheckedLoadImageFromFile') is CheckedLoadImageFromFile


def test_use_checked_image_loading_swaps_every_stock_loader():
    cfg = dict(type='ConcatDataset', datasets=[
        dict(type='CustomDataset', pipeline=[dict(type='LoadImageFromFile', to_float32=True)]),
        dict(type='X', pipeline=[dict(type='TestTimeAug', transforms=[
            [dict(type='mmcv.LoadImageFromFile')], [dict(type='Resize', scale=8)]])])])
    out = use_checked_image_loading(cfg)
    first = out['datasets'][0]['pipeline'][0]
    assert first == dict(type=CheckedLoadImageFromFile, to_float32=True)
    tta = out['datasets'][1]['pipeline'][0]['transforms']
    assert tta[0][0]['type'] is CheckedLoadImageFromFile and tta[1][0]['type'] == 'Resize'
    assert cfg['datasets'][0]['pipeline'][0]['type'] == 'LoadImageFromFile'  # a copy


def _imagenet_folder(root, n=6):
    os.makedirs(root / 'train', exist_ok=True)
    lines = []
    for i in range(n):
        (root / 'train' / f'{i}.jpg').write_bytes(_encoded('JPEG', i))
        lines.append(f'train/{i}.jpg {i % 2}')
    (root / 'ann.txt').write_text('\n'.join(lines) + '\n')
    return dict(type='CustomDataset', data_root=str(root), ann_file='ann.txt',
                pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])


def test_imagenet_format_bad_images_named_before_and_during_the_run(tmp_path):
    init_default_scope('mmpretrain')
    cfg = _imagenet_folder(tmp_path)
    (tmp_path / 'train/1.jpg').write_bytes(b'')
    os.remove(tmp_path / 'train/4.jpg')
    with pytest.raises(FileNotFoundError) as info:
        _loader(cfg)  # before the first iteration
    msg = str(info.value)
    assert re.search(r'CustomDataset: 2 of the 6 files listed by .*ann.txt are missing, empty or '
                     r'unreadable: sample 1: .*train/1.jpg is empty \(0 bytes\); sample 4: '
                     r'.*train/4.jpg does not exist', msg), msg
    (tmp_path / 'train/1.jpg').write_bytes(_encoded('JPEG', 1)[:200])  # cut off: not empty
    (tmp_path / 'train/4.jpg').write_bytes(_encoded('JPEG', 4))
    loader = _loader(cfg)  # the stat pass passes; the config's LoadImageFromFile is swapped
    it = iter(loader)
    next(it)
    truncated = (r'CheckedLoadImageFromFile: sample 1: image .*train/1.jpg is truncated or '
                 r'corrupt \(200 bytes')
    with pytest.raises(ValueError, match=truncated):
        next(it)
    # the stock Runner (mmpretrain's / mmseg's / mmdet's tools) with a config that names it
    from mmengine.runner import Runner as StockRunner
    stock = StockRunner.build_dataloader(dict(
        dataset={**cfg, 'pipeline': [dict(type='CheckedLoadImageFromFile'),
                                     dict(type='PackInputs')]},
        batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False)))
    with pytest.raises(ValueError, match=truncated):
        next(iter(stock))
    # an annotation file cut off mid-line: mmpretrain's reader says "not enough values to unpack"
    with open(tmp_path / 'ann.txt', 'a') as f:
        f.write('train/5.jp')
    with pytest.raises(ValueError, match=r'CustomDataset: annotation file .*ann.txt:7: '
                       r'"train/5.jp" is not "<image path> <integer label>"'):
        _loader(cfg)


def test_ade20k_and_coco_missing_or_empty_files_named_at_build(tmp_path):
    from tests.data_fixtures import write_ade20k, write_coco
    ade = write_ade20k(str(tmp_path / 'ade'), num_train=1, num_val=2, size=(16, 16))
    maps = sorted(glob.glob(f'{ade}/annotations/validation/*.png'))
    data = open(maps[1], 'rb').read()
    os.remove(maps[1])
    init_default_scope('mmseg')
    cfg = dict(type='ADE20KDataset', data_root=ade,
               data_prefix=dict(img_path='images/validation',
                                seg_map_path='annotations/validation'),
               pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                         dict(type='PackSegInputs')])
    with pytest.raises(FileNotFoundError, match=r'ADE20KDataset: 1 of the 4 files are missing.* '
                       r'sample 1: .*annotations/validation/ADE_valid_00000001.png does not '
                       r'exist'):
        _loader(cfg)
    with open(maps[1], 'wb') as f:
        f.write(data[:len(data) // 2])  # PIL: "image file is truncated", no file named
    it = iter(_loader(cfg))
    next(it)
    with pytest.raises(ValueError, match=r'CheckedLoadSegAnnotations: sample 1: segmentation map '
                       r'.*ADE_valid_00000001.png cannot be read \(OSError: image file is '
                       r'truncated'):
        next(it)
    coco = write_coco(str(tmp_path / 'coco'), num_train=1, num_val=2, size=(16, 16))
    open(f'{coco}/val2017/000000000000.jpg', 'wb').close()
    init_default_scope('mmdet')
    cfg = dict(type='CocoDataset', data_root=coco, ann_file='annotations/instances_val2017.json',
               data_prefix=dict(img='val2017/'), test_mode=True,
               pipeline=[dict(type='LoadImageFromFile'), dict(type='PackDetInputs')])
    with pytest.raises(ValueError, match=r'CocoDataset: 1 of the 2 files listed by '
                       r'.*instances_val2017.json are .*sample 0: .*000000000000.jpg is empty'):
        _loader(cfg)
    os.truncate(f'{coco}/annotations/instances_val2017.json', 300)  # pycocotools: JSONDecodeError
    with pytest.raises(ValueError, match=r'CocoDataset: annotation file .*instances_val2017.json:'
                       r'1:\d+: not valid JSON \(.*; the file has 300 bytes: truncated\?\)'):
        _loader(cfg)


def test_check_data_files_visual_sentences_and_image_text(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'a.png')
    (tmp_path / 'ann.jsonl').write_text(json.dumps({'images': ['a.png', 'gone.png']}) + '\n')
    ds = VisualSentenceDataset('ann.jsonl', data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r'train_dataloader: VisualSentenceDataset: 1 of '
                       r'the 2 files .*sample 0: .*gone.png does not exist'):
        check_data_files(ds, where='train_dataloader')
    (tmp_path / 'cap.jsonl').write_text(json.dumps({'image': 'a.png', 'caption': 'x'}) + '\n' +
                                        json.dumps({'image': '.', 'caption': 'y'}) + '\n')
    ds = ImageTextDataset('cap.jsonl', data_root=str(tmp_path), data_prefix=str(tmp_path))
    with pytest.raises(ValueError, match=r'ImageTextDataset: 1 of the 2 files .*sample 1: .* is '
                       r'a directory'):
        check_data_files(ds)


def test_annotation_files_that_are_not_utf8_name_the_line(tmp_path):
    bad = b'{"image": "a.png", "caption": "ok"}\n{"image": "b.png", "caption": "\xff\xfe"}\n'
    (tmp_path / 'cap.jsonl').write_bytes(bad)
    with pytest.raises(ValueError, match=r'cap.jsonl:2: not UTF-8 text'):
        ImageTextDataset('cap.jsonl', data_root=str(tmp_path))
    (tmp_path / 'cap.csv').write_bytes(b'image,caption\na.png,ok\nb.png,\xff\xfe\n')
    with pytest.raises(ValueError, match=r'cap.csv: after line \d: not readable as UTF-8 csv'):
        ImageTextDataset('cap.csv', data_root=str(tmp_path))
    (tmp_path / 's.jsonl').write_bytes(b'{"images": ["a.png"]}\n{"images": ["\xff.png"]}\n')
    with pytest.raises(ValueError, match=r's.jsonl:2: not UTF-8 text'):
        VisualSentenceDataset('s.jsonl', data_root=str(tmp_path))
    (tmp_path / 't.jsonl').write_bytes(b'{"tokens": "AQAAAA=="}\n\xff\n')
    with pytest.raises(ValueError, match=r't.jsonl:2: not UTF-8 text \(.*can\'t decode'):
        OfficialTokenJsonlDataset(str(tmp_path / 't.jsonl'), context_length=1)


# --------------------------------------------------------------------------------------------
# webdataset shards
# --------------------------------------------------------------------------------------------
def _read(shard):
    return [s['text'] for s in WebDatasetImageText(shard, shuffle=False)]


def test_webdataset_bad_shards_named_with_member_and_index(tmp_path):
    png = _encoded('PNG', size=32)  # 3 kB: more than one 512-byte tar block
    good = [(k, {'png': png, 'txt': k.encode()}) for k in ('a', 'b', 'c')]
    ok = write_shard(tmp_path / 'ok.tar', good)
    assert _read(ok) == ['a', 'b', 'c']
    data = open(ok, 'rb').read()
    offsets = {m.name: (m.offset, m.offset_data) for m in tarfile.open(ok).getmembers()}

    def shard(name, content):
        (tmp_path / name).write_bytes(content)
        return str(tmp_path / name)

    # refused at construction: one stat per shard
    with pytest.raises(ValueError, match=r'2 of 2 shards are not whole tar files: .*empty.tar is '
                       r'empty \(0 bytes\); .*cut.tar is truncated \(1000 bytes, not a whole'):
        WebDatasetImageText([shard('empty.tar', b''), shard('cut.tar', data[:1000])])
    # found when read
    cases = {
        'text.tar': (b'not a tar file\n' * 512,
                     r'shard .*text.tar is not a readable tar \(failed at its first member'),
        'mid.tar': (data[:offsets['b.png'][1] + 1024],  # cut inside b.png's data
                    r'shard .*mid.tar is not a readable tar \(failed reading member b.png or '
                    r'the header after it '
                    r'\(member 2 of the shard, sample 1\): ReadError: unexpected end of data'),
        'edge.tar': (data[:offsets['b.txt'][0]],  # cut where a header should start
                     r'shard .*edge.tar is truncated: .* after member b.png \(member 2 of the '
                     r'shard, sample 1\) without the end-of-archive blocks'),
        'garbled.tar': (data[:offsets['b.txt'][0]] + b'\x07' * 512 + data[offsets['b.txt'][1]:],
                        r'shard .*garbled.tar has data the tar reader cannot parse at byte '
                        r'\d+ \(after member b.png, member 2 of the shard, sample 1\)'),
        'none.tar': (open(write_shard(tmp_path / 'n', []), 'rb').read(),
                     r'shard .*none.tar is an empty tar \(no members\)'),
    }
    for name, (content, pattern) in cases.items():
        with pytest.raises(ValueError, match='WebDatasetImageText: ' + pattern):
            _read(shard(name, content))
    members = {
        'zero.tar': ([('a', {'png': b'', 'txt': b'x'})],
                     r'zero.tar: member a.png is empty \(0 bytes; member 0 of the shard, '
                     r'sample 0\)'),
        'half.tar': (good[:1] + [('b', {'png': png[:60], 'txt': b'x'})],
                     r'half.tar: member b.png is truncated or corrupt \(60 bytes, .*member 2 '
                     r'of the shard, sample 1\)'),
        'latin.tar': ([('a', {'png': png, 'txt': b'caf\xe9'})],
                      r'latin.tar: member a.txt is not UTF-8 text \(.*member 1 of the shard, '
                      r'sample 0\)'),
        'caps.tar': ([('a', {'txt': b'x'}), ('b', {'txt': b'y'})],
                     r'caps.tar has 2 members but no sample with both an image'),
    }
    for name, (samples, pattern) in members.items():
        with pytest.raises(ValueError, match='WebDatasetImageText: .*' + pattern):
            _read(write_shard(tmp_path / name, samples))
    with pytest.raises(ValueError, match=r'shard .*text.tar is not a readable tar while '
                       r'counting its samples'):
        len(WebDatasetImageText(str(tmp_path / 'text.tar')))


# --------------------------------------------------------------------------------------------
# token files
# --------------------------------------------------------------------------------------------
def test_token_files_named_at_construction(tmp_path):
    def shard(name):
        path = str(tmp_path / name)
        write_token_shard(path, [np.arange(5), np.arange(3)], seed=None)
        return path

    def put(path, content):
        with open(path, 'wb' if isinstance(content, bytes) else 'w') as f:
            f.write(content)

    def meta_with(d, **changes):
        with open(f'{d}/meta.json') as f:
            put(f'{d}/meta.json', json.dumps({**json.load(f), **changes}))

    def cut(path, n):
        os.truncate(path, os.path.getsize(path) - n)

    cases = {
        'empty': (lambda d: put(f'{d}/tokens.npy', b''),
                  r'tokens.npy \(token ids\) is empty \(0 bytes\)'),
        'text': (lambda d: put(f'{d}/tokens.npy', '1 2 3\n'),
                 r'tokens.npy \(token ids\) is not a .npy file'),
        'cut': (lambda d: cut(f'{d}/tokens.npy', 3),
                r'tokens.npy \(token ids\) is 149 bytes, but its header \(12 records of 2 bytes '
                r'after 128 header bytes\) needs 152: the file is truncated'),
        'pad': (lambda d: put(f'{d}/tokens.npy', open(f'{d}/tokens.npy', 'rb').read() + b'\0'),
                r'tokens.npy \(token ids\) is 153 bytes.* longer than its header says'),
        '2d': (lambda d: np.save(f'{d}/tokens.npy', np.zeros((3, 4), np.uint16)),
               r'tokens.npy \(token ids\) must be a 1-D uint16 array, got uint16 of shape '
               r'\(3, 4\)'),
        'offsets': (lambda d: np.save(f'{d}/offsets.npy', np.array([0, 0], np.int64)),
                    r'offsets.npy: offset 1 \(0\) is not after offset 0 \(0\)'),
        'meta': (lambda d: put(f'{d}/meta.json', '{"codebook": 81'),
                 r'meta.json is not a JSON object'),
        'count': (lambda d: meta_with(d, num_tokens='12'),
                  r"meta.json: num_tokens='12' must be integers >= 0"),
    }
    for name, (spoil, pattern) in cases.items():
        path = shard(name)
        spoil(path)
        with pytest.raises(ValueError, match='TokenStream: .*' + pattern):
            PackedTokenDataset(path, context_length=2)
    first, second = shard('first'), shard('second')
    tokens = np.load(f'{second}/tokens.npy', mmap_mode='r+')
    tokens[4] = 9000
    tokens.flush()
    del tokens
    ds = PackedTokenDataset([first, second], context_length=2)
    with pytest.raises(ValueError, match=r'id 9000 at stream position 16 \(.*second/tokens.npy, '
                       r'index 4\) is >= vocab_size 8292'):
        [ds[i] for i in range(len(ds))]
