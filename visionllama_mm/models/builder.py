"""Models built from a config in its toolbox's registry scope (mmpretrain, mmseg or mmdet)."""
import importlib
from typing import Tuple

import torch
import torch.nn as nn
from mmengine.config import Config

__all__ = ['build_model_from_cfg', 'build_model_on_meta']


def build_model_from_cfg(cfg: Config, init: bool = True) -> nn.Module:
    """Build ``cfg.model`` with the MODELS registry of the config's toolbox.

    ``init=False`` skips ``init_weights`` (no pretrained files are read; the constructors' own
    random initialisation stays), which is all that FLOP counting and benchmarking need.
    """
    from mmengine.registry import init_default_scope

    from ..engine.launch import toolbox_of
    scope = toolbox_of(cfg)
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model = registry.build(cfg.model)
    if init and hasattr(model, 'init_weights'):
        model.init_weights()
    return model


def build_model_on_meta(cfg: Config) -> Tuple[nn.Module, str]:
    """``cfg.model`` built on the meta device (no memory, no weights read) in its toolbox's scope,
    which is restored afterwards; returns ``(model, scope)``.

    A ``ClassConditionalDiffusion`` is built with a random-weights VAE: its frozen SD VAE holds
    no parameter of the model, and its weights folder need not exist.
    """
    from mmengine.registry import DefaultScope

    from ..engine.launch import toolbox_of
    scope = toolbox_of(cfg)
    model_cfg = cfg.model.copy()
    if model_cfg.get('type') == 'ClassConditionalDiffusion' and model_cfg.get('vae'):
        model_cfg.vae = dict(model_cfg.vae, path=None)
    with DefaultScope.overwrite_default_scope(scope), torch.device('meta'):
        return importlib.import_module(f'{scope}.registry').MODELS.build(model_cfg), scope
