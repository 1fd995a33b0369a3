"""Every paper-row config follows its official recipe, field by field (configs/*/recipes.yml).

Each record entry is resolved with ``Config.fromfile``, its optimizer built with the config's own
constructor (model on the meta device), and every field compared; a difference must be declared
as a deviation with its reason, and named in the config's comments.
"""
import glob
import os.path as osp

import pytest
import yaml

import visionllama_mm  # noqa: F401
from visionllama_mm.recipes import check_entry, format_markdown, load_records

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
RECIPES = sorted(glob.glob(f'{REPO}/configs/*/recipes.yml'))
FAMILIES = [osp.basename(osp.dirname(p)) for p in RECIPES]
ENTRIES = [e for p in RECIPES for e in load_records(p)]
# what every training row must state (evaluation-only rows: their test pipeline)
TRAINING_KEYS = {'@total_batch', '@precision', 'optim_wrapper.optimizer.type',
                 'optim_wrapper.optimizer.lr', 'optim_wrapper.optimizer.weight_decay',
                 'randomness.seed'}


@pytest.mark.parametrize('entry', ENTRIES,
                         ids=[f'{osp.basename(osp.dirname(e["path"]))}/{e["config"]}'
                              for e in ENTRIES])
def test_config_follows_its_recipe(entry):
    rows = check_entry(entry)
    bad = [f'{r["key"]}: official {r["official"]!r}, config {r["ours"]!r} ({r["note"]})'
           for r in rows if r['status'] == 'MISMATCH']
    assert not bad, f'{entry["config"]}:\n' + '\n'.join(bad)
    keys = set(entry.get('fields') or {})
    if 'optim_wrapper.optimizer.type' in keys or entry.get('params'):
        missing = TRAINING_KEYS - keys
        assert not missing, f'{entry["config"]}: the record does not state {sorted(missing)}'
        assert entry.get('params'), f'{entry["config"]}: no representative parameters'
    else:
        assert keys & {'@test_pipeline', '@test_transforms'}, entry['config']


@pytest.mark.parametrize('path', RECIPES, ids=FAMILIES)
def test_every_config_is_a_row_or_says_why_not(path):
    entries, others = load_records(path, with_others=True)
    folder = osp.dirname(path)
    configs = {osp.relpath(p, folder) for p in glob.glob(f'{folder}/**/*.py', recursive=True)
               if '/_base_/' not in p}
    rows = [e['config'] for e in entries]
    assert len(rows) == len(set(rows)), 'a config has two entries'
    assert not set(rows) & set(others)
    assert set(rows) | set(others) == configs, (
        f'not in {osp.relpath(path, REPO)}: {sorted(configs - set(rows) - set(others))}; '
        f'no such config: {sorted((set(rows) | set(others)) - configs)}')
    assert all(isinstance(why, str) and why for why in others.values())


@pytest.mark.parametrize('path', RECIPES, ids=FAMILIES)
def test_readme_names_the_config_and_deviations_of_each_row(path):
    with open(osp.join(osp.dirname(path), 'README.md')) as f:
        readme = f.read()
    table = format_markdown(load_records(path))
    assert table in readme, (
        f'{osp.relpath(osp.dirname(path), REPO)}/README.md lacks the per-row recipe table; '
        f'regenerate it with tools/analysis_tools/check_recipe.py --markdown')


def test_the_check_catches_undeclared_stale_and_unexplained_differences(tmp_path):
    config = 'visionllama-pyramid-small_8xb128-300e_in1k.py'
    src = f'{REPO}/configs/visionllama/{config}'
    record = dict(rows=[dict(config=src, row='test', fields={
        'optim_wrapper.optimizer.type': dict(official='AdamW', source='s'),
        'optim_wrapper.optimizer.lr': dict(official=123.0, source='s'),   # undeclared
        'model.backbone.drop_path_rate': dict(official=0.2, source='s'),  # declared, but equal
        'train_cfg.max_epochs': dict(official=100, source='s'),           # declared, no header
        'optim_wrapper.no_such.key': dict(official=None, source='absent'),
    }, deviations={
        'model.backbone.drop_path_rate': dict(ours=0.2, reason='r', header='drop path'),
        'train_cfg.max_epochs': dict(ours=300, reason='r', header='a phrase that is not there'),
    })], other_configs={})
    path = tmp_path / 'recipes.yml'
    path.write_text(yaml.safe_dump(record))
    rows = {r['key']: r for r in check_entry(load_records(str(path))[0])}
    assert rows['optim_wrapper.optimizer.type']['status'] == 'ok'
    assert rows['optim_wrapper.no_such.key']['status'] == 'ok'
    assert rows['optim_wrapper.optimizer.lr']['status'] == 'MISMATCH'
    assert 'undeclared' in rows['optim_wrapper.optimizer.lr']['note']
    assert 'equal to the official' in rows['model.backbone.drop_path_rate']['note']
    assert 'do not contain' in rows['train_cfg.max_epochs']['note']


def test_bad_records_and_cli_arguments_are_refused(tmp_path, monkeypatch, capsys):
    """A malformed recipes.yml names the file and what is wrong; an unknown family names the file
    the tool looked for."""
    import importlib.util
    path = tmp_path / 'recipes.yml'
    path.write_text(yaml.safe_dump(dict(rows=[], extras={})))
    with pytest.raises(ValueError, match=r'recipes\.yml: expected a mapping .* got \[\'extras\'\]'):
        load_records(str(path))
    path.write_text(yaml.safe_dump(dict(rows=[dict(row='no config')])))
    with pytest.raises(ValueError, match=r'entry 0 needs "config"'):
        load_records(str(path))
    path.write_text(yaml.safe_dump(dict(rows=[dict(config='a_8xb2_x.py', fields={},
                                                   deviations={'lr': dict(ours=1)})])))
    with pytest.raises(ValueError, match=r"a_8xb2_x\.py: deviation 'lr' is not a field"):
        load_records(str(path))
    spec = importlib.util.spec_from_file_location(
        'check_recipe', f'{REPO}/tools/analysis_tools/check_recipe.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr('sys.argv', ['check_recipe.py', 'visionlama'])
    with pytest.raises(SystemExit, match=r'visionlama: no such recipes file .*configs/visionlama/'
                                         r'recipes\.yml'):
        tool.main()
