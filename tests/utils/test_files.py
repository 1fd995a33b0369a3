"""visionllama_mm.utils file helpers: atomic writes, the JSON-lines reader, checksums."""
import hashlib
import json
import os

import numpy as np
import pytest
import torch

from visionllama_mm.utils import (atomic_path, atomic_write, file_sha256, json_fingerprint,
                                  read_jsonl, temporary_name, weights_checksum, write_json)


def test_atomic_write_replaces_whole_or_leaves_the_old_file(tmp_path):
    path = str(tmp_path / 'out.json')
    write_json(path, {'a': 1}, fsync=True, sort_keys=True)
    assert json.load(open(path)) == {'a': 1} and os.listdir(tmp_path) == ['out.json']
    with pytest.raises(RuntimeError, match='stopped'):
        with atomic_write(path) as f:
            f.write('{"half')
            assert open(path).read() == '{\n "a": 1\n}'  # readers still see the old file
            raise RuntimeError('stopped')
    assert open(path).read() == '{\n "a": 1\n}' and os.listdir(tmp_path) == ['out.json']
    # writers that add their own extension write to x.tmp.npz, renamed to x.npz
    assert temporary_name('d/x.npz', keep_ext=True) == 'd/x.tmp.npz'
    assert temporary_name('d/x.npz') == 'd/x.npz.tmp'
    with atomic_path(str(tmp_path / 'x.npz'), keep_ext=True) as tmp:
        assert tmp == str(tmp_path / 'x.tmp.npz')
        np.savez(tmp, a=np.arange(3))
    assert sorted(os.listdir(tmp_path)) == ['out.json', 'x.npz']
    assert np.load(tmp_path / 'x.npz')['a'].tolist() == [0, 1, 2]


def test_read_jsonl_numbers_lines_and_names_the_bad_one(tmp_path):
    path = tmp_path / 'a.jsonl'
    path.write_bytes(b'{"x": 1}\n\n  \n[2, 3]\n')
    assert list(read_jsonl(str(path))) == [(1, {'x': 1}), (4, [2, 3])]
    path.write_bytes(b'{"x": 1}\n{"x": \n')
    with pytest.raises(ValueError) as err:
        list(read_jsonl(str(path)))
    assert str(err.value) == f'{path}:2: not a JSON object (Expecting value).'
    path.write_bytes(b'{"x": 1}\n\n{"x": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=rf"^{path}:3: not UTF-8 text \('utf-8' codec can't "
                       r'decode byte 0xe9'):
        list(read_jsonl(str(path)))


def test_checksums(tmp_path):
    path = tmp_path / 'f.bin'
    data = bytes(range(256)) * 9
    path.write_bytes(data)
    assert file_sha256(str(path), block=1000) == hashlib.sha256(data).hexdigest()
    assert json_fingerprint({'a': 1, 'b': [1, 2]}) == json_fingerprint({'b': [1, 2], 'a': 1})
    assert json_fingerprint({'a': 1}) == hashlib.sha256(b'{"a": 1}').hexdigest()[:16]
    torch.manual_seed(0)
    m = torch.nn.Linear(2, 2)
    before = weights_checksum(m)
    assert len(before) == 16 and weights_checksum(m) == before
    with torch.no_grad():
        m.bias[0] += 1
    assert weights_checksum(m) != before
