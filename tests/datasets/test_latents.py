"""LatentDataset on hand-written folders of the extraction layout: items, random view choice,
metainfo, lazy init, pickling without the memory maps, mmengine data loading, and the refusal
of incomplete or inconsistent folders."""
import json
import pickle

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.structures import DataSample

from visionllama_mm.datasets.latents import LatentDataset


def write_folder(root, count=6, views=2, shape=(8, 4, 4), complete=True, classes=None, **meta):
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((views, count, *shape)).astype(np.float16)
    labels = np.arange(count, dtype=np.int64) % 3
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / 'latents.npy', latents)
    np.save(root / 'labels.npy', labels)
    info = dict(count=count, views=views, shape=list(shape), dtype='float16', scale=0.18215,
                vae='vae', vae_sha256='0' * 16, image_size=[32, 32], source={}, classes=classes,
                num_classes=len(classes) if classes else None, complete=complete)
    info.update(meta)
    (root / 'meta.json').write_text(json.dumps(info))
    return latents, labels


def test_items_views_and_metainfo(tmp_path):
    latents, labels = write_folder(tmp_path / 'a', classes=['x', 'y', 'z'])
    ds = LatentDataset(str(tmp_path / 'a'), test_mode=True)
    assert len(ds) == 6
    item = ds[4]
    assert item['inputs'].dtype == torch.float32 and item['inputs'].shape == (8, 4, 4)
    assert torch.equal(item['inputs'], torch.from_numpy(latents[0, 4].astype(np.float32)))
    assert isinstance(item['data_samples'], DataSample)
    assert item['data_samples'].gt_label.tolist() == [1]
    assert item['data_samples'].sample_idx == 4
    assert ds[-1]['data_samples'].sample_idx == 5
    with pytest.raises(IndexError, match='index 6 out of range for 6'):
        ds[6]
    info = ds.metainfo
    assert info['classes'] == ('x', 'y', 'z') and info['num_classes'] == 3
    assert info['views'] == 2 and 'complete' not in info

    # flip: a random stored view per item (both occur); flip=False: always view 0
    np.random.seed(0)
    flip = LatentDataset(str(tmp_path / 'a'))
    chosen = []
    for _ in range(40):
        x = flip[2]['inputs'].numpy()
        chosen.append(next(v for v in (0, 1) if np.array_equal(x, latents[v, 2])))
    assert 10 < sum(chosen) < 30
    plain = LatentDataset(str(tmp_path / 'a'), flip=False)
    assert all(torch.equal(plain[2]['inputs'], ds[2]['inputs']) for _ in range(10))

    # one view only: flip=True reads it
    one, _ = write_folder(tmp_path / 'b', views=1)
    single = LatentDataset(str(tmp_path / 'b'))
    assert np.array_equal(single[3]['inputs'].numpy(), one[0, 3])
    assert 'classes' not in single.metainfo and single.metainfo['num_classes'] is None


def test_lazy_init_and_pickling(tmp_path):
    lazy = LatentDataset(str(tmp_path / 'later'), test_mode=True, lazy_init=True)
    assert 'not initialised' in repr(lazy)
    with pytest.raises(FileNotFoundError, match='extract_latents.py'):
        lazy.full_init()
    latents, _ = write_folder(tmp_path / 'later', count=500)
    assert len(lazy) == 500 and 'count=500' in repr(lazy)
    # pickled (e.g. to spawned workers) without the memory maps, which are reopened on use
    blob = pickle.dumps(lazy)
    assert len(blob) < 4096 < latents.nbytes
    back = pickle.loads(blob)
    assert np.array_equal(back[7]['inputs'].numpy(), latents[0, 7]) and len(back) == 500


def test_mmengine_data_loading(tmp_path):
    latents, labels = write_folder(tmp_path / 'a', count=10)
    init_default_scope('mmpretrain')
    loader = Runner.build_dataloader(dict(
        batch_size=4, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='LatentDataset', data_root=str(tmp_path / 'a'))), seed=0)
    batches = list(loader)
    assert [tuple(b['inputs'].shape) for b in batches] == [(4, 8, 4, 4)] * 2 + [(2, 8, 4, 4)]
    got = torch.cat([b['inputs'] for b in batches]).numpy()
    for i in range(10):  # each item is one of its two stored views
        assert any(np.array_equal(got[i], latents[v, i]) for v in (0, 1))
    assert [int(s.gt_label) for b in batches for s in b['data_samples']] == labels.tolist()
    ds = LatentDataset(str(tmp_path / 'a'), test_mode=True)
    batch = pseudo_collate([ds[0], ds[1]])
    assert isinstance(batch['inputs'], list) and torch.equal(batch['inputs'][1], ds[1]['inputs'])
    assert default_collate([ds[0], ds[1]])['inputs'].shape == (2, 8, 4, 4)


def test_refuses_incomplete_and_inconsistent_folders(tmp_path):
    write_folder(tmp_path / 'half', complete=False)
    with pytest.raises(ValueError, match=r'half.meta\.json says the extraction is incomplete'):
        LatentDataset(str(tmp_path / 'half'))
    write_folder(tmp_path / 'shape', shape=(8, 4, 4))
    meta = json.loads((tmp_path / 'shape' / 'meta.json').read_text())
    (tmp_path / 'shape' / 'meta.json').write_text(json.dumps(dict(meta, shape=[8, 2, 2])))
    with pytest.raises(ValueError, match=r'shape.latents\.npy is float16 \(2, 6, 8, 4, 4\), but '
                                         r'.* describes float16 \(2, 6, 8, 2, 2\)'):
        LatentDataset(str(tmp_path / 'shape'))
    write_folder(tmp_path / 'labels')
    np.save(tmp_path / 'labels' / 'labels.npy', np.zeros(5, np.int64))
    with pytest.raises(ValueError, match=r'labels.labels\.npy is int64 \(5,\), but .* 6 integer'):
        LatentDataset(str(tmp_path / 'labels'))
    write_folder(tmp_path / 'gone')
    (tmp_path / 'gone' / 'latents.npy').unlink()
    with pytest.raises(FileNotFoundError, match=r'gone.latents\.npy does not exist'):
        LatentDataset(str(tmp_path / 'gone'))
    write_folder(tmp_path / 'obj')
    np.save(tmp_path / 'obj' / 'labels.npy', np.array([None] * 6, dtype=object))
    with pytest.raises(ValueError, match=r'obj.labels\.npy is not a plain numeric .npy array'):
        LatentDataset(str(tmp_path / 'obj'))
