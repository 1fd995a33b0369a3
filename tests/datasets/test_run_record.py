"""The run record shared by the data-writing tools: differences named field by field."""
import pytest

from visionllama_mm.datasets.run_record import (RunRecordMismatch, check_record, foreign_entries,
                                                read_record, record_differences, remove_outputs,
                                                write_record)


def test_differences_and_message(tmp_path):
    then = dict(count=24, source=dict(data_root='/a', config='x.py'), views=1)
    now = dict(count=24, source=dict(data_root='/b', config='y.py'), views=2, extra=[1])
    assert record_differences(then, now, ignore=('source.config', )) == {
        'extra': (None, [1]), 'source.data_root': ('/a', '/b'), 'views': (1, 2)}
    check_record(None, now, 'out')  # nothing recorded yet: a fresh start
    check_record(then, dict(then, source=dict(then['source'], config='z.py')), 'out',
                 ignore=('source.config', ))
    with pytest.raises(RunRecordMismatch) as err:
        check_record(then, now, 'out', what='extracted', ignore=('source.config', ))
    assert str(err.value) == (
        "out was extracted for other inputs: extra: None (then) -> [1] (now); source.data_root: "
        "'/a' (then) -> '/b' (now); views: 1 (then) -> 2 (now). Refusing to mix or reuse it; "
        'pass --overwrite to start over, or use another folder.')

    path = str(tmp_path / 'r.json')
    write_record(path, now)
    assert read_record(path) == now and read_record(str(tmp_path / 'none.json')) is None
    (tmp_path / 'bad.json').write_text('{"half')
    with pytest.raises(RunRecordMismatch, match='bad.json is not a readable run record'):
        read_record(str(tmp_path / 'bad.json'))


def test_remove_only_own_outputs(tmp_path):
    (tmp_path / 'parts').mkdir()
    for name in ('meta.json', 'meta.json.tmp', 'mine.txt', 'parts/p.npz'):
        (tmp_path / name).write_text('x')
    own = ('meta.json', 'parts', 'tokens.npy')
    assert foreign_entries(str(tmp_path), own) == ['mine.txt']
    assert remove_outputs(str(tmp_path), own) == ['meta.json', 'meta.json.tmp', 'parts']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['mine.txt']
