"""Datasets written on first use: whole or not at all, never into a folder that is not ours."""
import multiprocessing as mp
import os
import os.path as osp

import pytest

from visionllama_mm.datasets.folders import DONE_MARKER, write_folder_once


def _write_numbers(folder):
    with open(osp.join(folder, 'numbers.txt'), 'w') as f:
        f.write(' '.join(str(i) for i in range(1000)))


def _prepare(root):
    write_folder_once(root, _write_numbers, 'Numbers')


def test_written_once_and_whole(tmp_path):
    root = str(tmp_path / 'numbers')
    assert write_folder_once(root, _write_numbers, 'Numbers') == root
    assert sorted(os.listdir(root)) == sorted([DONE_MARKER, 'numbers.txt'])
    calls = []
    write_folder_once(root, calls.append, 'Numbers')  # complete: the writer is not called again
    assert calls == []
    # an empty folder made beforehand is filled
    (tmp_path / 'empty').mkdir()
    write_folder_once(str(tmp_path / 'empty'), _write_numbers, 'Numbers')
    assert (tmp_path / 'empty' / 'numbers.txt').exists()


def test_a_failing_writer_leaves_nothing(tmp_path):
    def fail(folder):
        open(osp.join(folder, 'half.txt'), 'w').close()
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        write_folder_once(str(tmp_path / 'numbers'), fail, 'Numbers')
    assert os.listdir(tmp_path) == []


def test_concurrent_writers_end_with_one_folder(tmp_path):
    root = str(tmp_path / 'numbers')
    procs = [mp.get_context('fork').Process(target=_prepare, args=(root,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert os.listdir(tmp_path) == ['numbers']  # the losers' temporary folders are gone
    assert open(osp.join(root, 'numbers.txt')).read().split()[-1] == '999'
