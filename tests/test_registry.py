"""`import visionllama_mm` registers into mmpretrain, mmseg and mmdet alike."""
import importlib

import pytest
import torch

import visionllama_mm  # noqa: F401
from visionllama_mm.registry import TOOLBOXES


@pytest.mark.parametrize('toolbox', TOOLBOXES)
def test_backbone_builds_from_every_toolbox(toolbox):
    registry = importlib.import_module(f'{toolbox}.registry').MODELS
    model = registry.build(dict(type='VisionLLaMA', arch='small', out_type='featmap'))
    assert type(model).__name__ == 'VisionLLaMA'
    out = model(torch.randn(1, 3, 32, 48))
    assert out[0].shape == (1, 384, 2, 3)


@pytest.mark.parametrize('toolbox', TOOLBOXES)
def test_dataset_registered_everywhere(toolbox):
    registry = importlib.import_module(f'{toolbox}.registry').DATASETS
    assert registry.get('DigitsDataset') is not None


def test_config_with_custom_imports_builds(repo):
    from mmengine.config import Config

    from visionllama_mm.models.builder import build_model_from_cfg
    cfg = Config.fromfile(f'{repo}/configs/quickstart/visionllama-tiny-p4_1xb64-20e_digits.py')
    assert cfg.custom_imports['imports'] == ['visionllama_mm']
    model = build_model_from_cfg(cfg)
    logits = model(torch.randn(2, 3, 32, 32), mode='tensor')
    assert logits.shape == (2, 10)
