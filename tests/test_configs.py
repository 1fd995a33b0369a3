"""Every shipped config loads, carries custom_imports, and its model builds (on the meta device)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

import visionllama_mm  # noqa: F401
from visionllama_mm.models.builder import build_model_on_meta

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(f'{REPO}/configs/**/*.py', recursive=True)
                 if '/_base_/' not in p)


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['visionllama_mm']
    if 'train_dataloader' in cfg:  # every config that trains stops at the first NaN/inf loss
        assert cfg.default_hooks.get('nonfinite_check') == dict(type='NonFiniteCheckHook'), \
            'default_hooks.nonfinite_check is missing (visionllama_mm.engine.hooks)'
    model, _ = build_model_on_meta(cfg)  # in the config's toolbox scope, restored afterwards
    assert sum(p.numel() for p in model.parameters()) > 0
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if isinstance(loader, dict) and isinstance(loader.get('collate_fn'), dict):
            assert not {'_scope_', '_delete_'} & set(loader['collate_fn']), field
