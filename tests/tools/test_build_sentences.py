"""tools/lvm/build_sentences.py: OUT.jsonl is rebuilt only from the inputs it records.

Run again with the same inputs it is left alone; another folder, seed or option, folders whose
files changed, or an OUT without a record are refused with the differing fields; --overwrite
replaces it. The CLI's numbers and folders are checked at start-up."""
import importlib.util
import json
import os.path as osp

import pytest
from PIL import Image

from ..conftest import REPO


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'build_sentences', osp.join(REPO, 'tools', 'lvm', 'build_sentences.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def root(tmp_path):
    for folder, count in (('a', 4), ('b', 3)):
        (tmp_path / folder).mkdir()
        for k in range(count):
            Image.new('RGB', (4, 4), (k, 0, 0)).save(tmp_path / folder / f'{k}.png')
    return tmp_path


def test_rebuild_only_from_the_recorded_inputs(root, capsys):
    tool = load_tool()
    out = root / 'out.jsonl'

    def run(*argv):
        tool.main([str(out), '--data-root', str(root), *argv])
        return capsys.readouterr().out

    assert 'wrote 4 single sentences' in run('single', '--images', 'a')
    record = json.loads((root / 'out.jsonl.record.json').read_text())
    assert record['images'] == 'a' and record['num_sentences'] == 4
    assert record['data_root'] == str(root) and record['kind'] == 'single'
    assert 'already holds these 4 single sentences; nothing to do' in run('single', '--images',
                                                                          'a')
    with pytest.raises(SystemExit) as err:
        run('single', '--images', 'b')
    msg = str(err.value)
    assert msg.startswith(f"{out} was built for other inputs: images: 'a' (then) -> 'b' (now); "
                          'num_sentences: 4 (then) -> 3 (now); sentences: ')
    assert msg.endswith('Refusing to mix or reuse it; pass --overwrite to replace it, or write '
                        'another file.')
    Image.new('RGB', (4, 4)).save(root / 'a' / '9.png')  # the folder changed since
    with pytest.raises(SystemExit, match=r'num_sentences: 4 \(then\) -> 5 \(now\); sentences'):
        run('single', '--images', 'a')
    assert 'wrote 3 single sentences' in run('--overwrite', 'single', '--images', 'b')
    assert len(out.read_text().splitlines()) == 3

    (root / 'out.jsonl.record.json').unlink()
    with pytest.raises(SystemExit, match='exists and has no out.jsonl.record.json beside it'):
        run('single', '--images', 'b')


def test_cli_checks(root, capsys):
    tool = load_tool()
    base = [str(root / 'o.jsonl'), '--data-root', str(root)]
    for argv, message in (
            (['colorization', '--images', 'a', '--n-shots', '0'], '--n-shots must be >= 1, got 0'),
            (['frames', '--sequences', 'a', '--n-epochs', '0'], '--n-epochs must be >= 1'),
            (['video', '--videos', 'a', '--strides', '4', '0'], '--strides must all be >= 1'),
            (['category', '--classes', 'a', '--images-per-shot', '-1'],
             '--images-per-shot must be >= 1'),
            (['--seed', '-2', 'single', '--images', 'a'], '--seed must be >= 0, got -2')):
        with pytest.raises(SystemExit):
            tool.parse_args(base + argv)
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args([str(root / 'o.jsonl'), '--data-root', str(root / 'none'), 'single',
                         '--images', 'a'])
    assert f'--data-root {root / "none"} is not a folder' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args([str(root / 'a'), 'single', '--images', 'a'])
    assert 'is a folder; give the JSON-lines file to write' in capsys.readouterr().err
