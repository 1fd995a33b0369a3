"""Every shipped config loads, carries custom_imports, and its model builds (on the meta device).

Each config is also resolved twice from one ``Config.fromfile``: by our ``tools/train.py``
(:func:`~visionllama_mm.engine.launch.merge_train_args`) and by the stock toolbox's
``tools/train.py`` (mmpretrain's own ``merge_args``, loaded from its ``.mim/tools/train.py``;
mmseg's and mmdet's config handling reproduced below, as their ``main()`` holds it). The two must
be equal: our tool adds nothing that the config does not say. The stock resolution is then
compared key by key with the resolution our tool gave at commit 8244cd4 (before the runtime
defaults moved into the configs and the shared ``_base_`` recipes were introduced), recorded in
``tests/fixtures/configs_resolved_at_8244cd4.json.gz``.
"""
import argparse
import copy
import glob
import gzip
import importlib.util
import json
import os.path as osp

import pytest
from mmengine.config import Config, ConfigDict

import visionllama_mm  # noqa: F401
from visionllama_mm.engine.launch import merge_train_args
from visionllama_mm.models.builder import build_model_on_meta

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(f'{REPO}/configs/**/*.py', recursive=True)
                 if '/_base_/' not in p)
BEFORE = osp.join(REPO, 'tests', 'fixtures', 'configs_resolved_at_8244cd4.json.gz')

# Keys that differ from the recorded resolution on purpose.
CHANGED_ON_PURPOSE = {
    # the checked Runner is named by the config; before, tools/train.py chose it silently
    'runner_type',
    # the record was made with --launcher pytorch (so that no single-process unsharding applied)
    'launcher',
}
# Top-level helper variables that configs on the shared digits loaders
# (configs/_base_/datasets/digits.py) no longer define: the Runner never reads them.
HELPERS_REMOVED = {
    'configs/quickstart/visionllama-tiny-p4_1xb64-20e_digits.py':
        {'data_root', 'train_pipeline', 'test_pipeline'},
    'configs/vitamin/clip_vitamin-tiny_1xb64-300it_digits.py': {'digits_root', 'test_pipeline'},
    'configs/vitamin/clip-ltt_vitamin-tiny_1xb64-300it_digits.py': {'digits_root', 'test_pipeline'},
}
# Configs renamed since the record (new path: recorded path)
RENAMED = {
    'configs/lvm/vqgan/vqgan_tiny-f4_1xb8-1500it_sample-photos.py':
        'configs/lvm/vqgan/vqgan_tiny-f4_1xb16-300it_sample-photos.py',
}
# Keys of one config changed on purpose since the record (key prefixes)
KEYS_CHANGED = {
    # the sample-photo VQGAN went to width 64 at every level (two channels per GroupNorm group),
    # restarts idle codes, and trains 1500 steps of 8 at 1e-3 (was 300 of 16 at 2e-3)
    'configs/lvm/vqgan/vqgan_tiny-f4_1xb8-1500it_sample-photos.py':
        ('arch.channel_mult', 'arch.hidden_channels', 'arch.num_res_blocks',
         'model.tokenizer.arch.channel_mult', 'model.tokenizer.arch.hidden_channels',
         'model.tokenizer.arch.num_res_blocks', 'model.restart_idle_codes',
         'train_dataloader.batch_size', 'optim_wrapper.optimizer.lr', 'param_scheduler.1.end',
         'train_cfg.max_iters', 'train_cfg.val_interval', 'default_hooks.checkpoint.interval',
         'default_hooks.logger.interval', 'work_dir'),
    # its base's new option, set to the old behaviour (no restart)
    'configs/lvm/vqgan/vqgan_tiny-f4_1xb32-300it_digits.py': ('model.restart_idle_codes', ),
    # the ViTamin UperNets' top-level data_preprocessor (what `tools/test.py --tta` builds the
    # segmentor with) now carries CLIP's mean/std like model.data_preprocessor; it kept mmseg's
    # ImageNet mean/std before
    **{f'configs/vitamin/upernet_vitamin-{size}_clip-pre_8xb2-amp-160k_ade20k-512x512.py': (
        'data_preprocessor.mean', 'data_preprocessor.std') for size in ('small', 'base', 'large')},
}
# Model arguments renamed to mmpretrain's names (the old names still work, with a warning).
MODEL_ARG_RENAMES = {'depth': 'num_layers', 'hidden_dims': 'feedforward_channels',
                     'width': 'proj_dims'}


def _load_script(path: str, name: str):
    """A tools/train.py as a module: it defines parse_args/merge_args/main and runs nothing."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stock_mmpretrain_train():
    """mmpretrain's own tools/train.py (shipped in the wheel's ``.mim``)."""
    import mmpretrain
    return _load_script(osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'train.py'),
                        'mmpretrain_stock_train')


STOCK_MMPRETRAIN_MERGE_ARGS = _stock_mmpretrain_train().merge_args
OUR_TRAIN = _load_script(osp.join(REPO, 'tools', 'train.py'), 'visionllama_mm_train')


def stock_train_resolution(cfg: Config, config: str, launcher: str = 'none') -> Config:
    """What the stock toolbox's tools/train.py does to ``cfg`` on ``train.py CONFIG``."""
    scope = cfg.get('default_scope') or 'mmpretrain'
    if scope == 'mmpretrain':
        args = argparse.Namespace(config=config, work_dir=None, resume=None, amp=False,
                                  no_validate=False, auto_scale_lr=False, no_pin_memory=False,
                                  no_persistent_workers=False, cfg_options=None,
                                  launcher=launcher, local_rank=0)
        return STOCK_MMPRETRAIN_MERGE_ARGS(cfg, args)
    # mmseg 1.2.2 and mmdet 3.3.0 tools/train.py main(): launcher, --cfg-options, work dir
    # (CLI > config > ./work_dirs/<config name>), --amp, --resume; nothing else without flags
    cfg.launcher = launcher
    if cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    if scope == 'mmseg':
        cfg.resume = False
    return cfg


def our_train_resolution(cfg: Config, config: str, launcher: str = 'none') -> Config:
    return merge_train_args(cfg, OUR_TRAIN.parse_args([config, '--launcher', launcher]))


def _flat(node, prefix=''):
    out = {}
    if isinstance(node, dict):
        if not node:
            out[prefix] = {}
        for key, value in node.items():
            out.update(_flat(value, f'{prefix}.{key}' if prefix else str(key)))
    elif isinstance(node, (list, tuple)):
        if not node:
            out[prefix] = []
        for i, value in enumerate(node):
            out.update(_flat(value, f'{prefix}.{i}'))
    else:
        out[prefix] = node
    return out


def _plain(value):
    """JSON's view of a config value (as the record was written)."""
    return json.loads(json.dumps(value, default=lambda v: f'<{type(v).__name__}> {v!r}'))


@pytest.fixture(scope='module')
def before():
    with gzip.open(BEFORE, 'rt') as f:
        return json.load(f)


def differences_from_record(recorded: dict, resolved: dict, path: str) -> list:
    """Keys whose values differ, except those changed on purpose (see the lists above) and
    ``_scope_`` (the toolbox whose base a dict was inherited from; a dict that a config of this
    package now writes itself has none, and the type it names is the same class)."""
    recorded = copy.deepcopy(recorded)
    hooks = [h for h in recorded.get('custom_hooks') or []
             if h.get('type') != 'ReproducibleRandomnessHook']
    # the randomness hook is a default hook now (a config's own custom_hooks leave it in place)
    if hooks != (recorded.get('custom_hooks') or []):
        recorded['default_hooks']['reproducibility'] = dict(type='ReproducibleRandomnessHook')
        if hooks or 'custom_hooks' in resolved:
            recorded['custom_hooks'] = hooks
        else:
            recorded.pop('custom_hooks')
    old, new = _flat(recorded), _flat(_plain(resolved))
    for key in list(old):
        parts = key.split('.')
        if key.startswith('model.') and key not in new:
            renamed = '.'.join(parts[:-1] + [MODEL_ARG_RENAMES.get(parts[-1], parts[-1])])
            if renamed in new and renamed not in old:
                old[renamed] = old.pop(key)
    skip = CHANGED_ON_PURPOSE | HELPERS_REMOVED.get(path, set())
    absent = '<absent>'
    return [f'{k}: was {old.get(k, absent)!r}, now {new.get(k, absent)!r}'
            for k in sorted(set(old) | set(new))
            if k.split('.')[0] not in skip and not k.endswith('._scope_')
            and not k.startswith(KEYS_CHANGED.get(path, ()))
            and old.get(k, absent) != new.get(k, absent)]


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_builds(path, before):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['visionllama_mm']
    # `tools/test.py --tta` wraps the model in a TTA model, which mmengine builds with the
    # tta_model's or else the config's top-level data_preprocessor in place of
    # model.data_preprocessor: the two must agree
    own = cfg.model.get('data_preprocessor')
    given = (cfg.get('tta_model') or {}).get('data_preprocessor', cfg.get('data_preprocessor'))
    if given is not None and own is not None:
        assert ({k: v for k, v in given.items() if k != '_scope_'}
                == {k: v for k, v in own.items() if k != '_scope_'}), (given, own)

    # our tools/train.py and the stock toolbox's resolve the config identically
    ours = our_train_resolution(copy.deepcopy(cfg), path)
    stock = stock_train_resolution(copy.deepcopy(cfg), path)
    assert ours.to_dict() == stock.to_dict()
    # ... and as our tool resolved it before the runtime defaults became config entries
    rel = osp.relpath(path, REPO)
    if RENAMED.get(rel, rel) in before:
        resolved = stock_train_resolution(copy.deepcopy(cfg), path, launcher='pytorch')
        diff = differences_from_record(before[RENAMED.get(rel, rel)], resolved.to_dict(), rel)
        assert not diff, f'{rel} resolves differently from commit 8244cd4:\n' + '\n'.join(diff)

    if cfg.get('train_cfg') is not None and isinstance(cfg.get('train_dataloader'), dict):
        # every config that trains says what runs (configs/_base_/default_runtime.py)
        assert cfg.get('runner_type') in ('CheckedRunner', 'FlexibleRunner')
        assert cfg.default_hooks.get('nonfinite_check') == dict(type='NonFiniteCheckHook'), \
            'default_hooks.nonfinite_check is missing (visionllama_mm.engine.hooks)'
        assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
        assert cfg.default_hooks.get('reproducibility') == dict(type='ReproducibleRandomnessHook')
        assert 'ReproducibleRandomnessHook' not in str(cfg.get('custom_hooks'))
        sampler = cfg.train_dataloader.get('sampler')
        assert sampler is None or sampler.type == 'ReproducibleSampler', sampler
    model, _ = build_model_on_meta(cfg)  # in the config's toolbox scope, restored afterwards
    assert sum(p.numel() for p in model.parameters()) > 0
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if isinstance(loader, dict) and isinstance(loader.get('collate_fn'), dict):
            assert not {'_scope_', '_delete_'} & set(loader['collate_fn']), field
    assert '_delete_' not in json.dumps(_plain(cfg.to_dict()))


def test_stock_resolution_is_compared_with_the_real_stock_code():
    """The mmpretrain side of the comparison is mmpretrain's own merge_args: it sets the
    dataloader defaults that our merge_train_args mirrors, and nothing of this package."""
    cfg = Config(dict(default_scope='mmpretrain', train_dataloader=dict(batch_size=2)))
    out = stock_train_resolution(cfg, 'configs/x.py')
    assert out.train_dataloader == ConfigDict(
        pin_memory=True, persistent_workers=True, collate_fn=dict(type='default_collate'),
        batch_size=2)
    assert out.work_dir == './work_dirs/x' and out.launcher == 'none'


def _without_scope(node):
    if isinstance(node, dict):
        return {k: _without_scope(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return [_without_scope(v) for v in node]
    return node


def test_lsj_configs_train_with_mmdets_common_lsj_pipeline():
    """The Mask R-CNN configs on configs/_base_/mask-rcnn_fpn_8xb4-amp-lsj-3x_coco.py train with
    the pipeline of mmdet's common/lsj-100e_coco-instance.py (the ViTDet config inherits that
    file itself and keeps ViTDet's order: flip, resize, crop, pad)."""
    import mmdet
    common = Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', 'common',
                                      'lsj-100e_coco-instance.py'))
    lsj = [p for p in CONFIGS if '-lsj-3x' in osp.basename(p)]
    assert len(lsj) == 7
    for path in lsj:
        cfg = Config.fromfile(path)
        dataset = cfg.train_dataloader.dataset
        pipeline = dataset.get('pipeline') or dataset.dataset.pipeline
        assert _without_scope(pipeline) == _without_scope(common.train_pipeline), path
