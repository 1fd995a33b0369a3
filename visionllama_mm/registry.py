"""Register the package's classes into mmpretrain, mmseg and mmdet at once.

``MODELS.register_module()`` here puts a class into ``mmpretrain.registry.MODELS``,
``mmseg.registry.MODELS`` and ``mmdet.registry.MODELS``, so a config of any of the three toolboxes
finds ``type='VisionLLaMA'`` without a scope prefix. The same holds for every other registry name
below.
"""
import importlib
from typing import Callable, List, Optional, Sequence

__all__ = [
    'MultiRegistry', 'MODELS', 'DATASETS', 'TRANSFORMS', 'HOOKS', 'METRICS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'TOOLBOXES'
]

TOOLBOXES = ('mmpretrain', 'mmseg', 'mmdet')


class MultiRegistry:
    """One registry name (e.g. ``'MODELS'``) of every toolbox in :data:`TOOLBOXES`."""

    def __init__(self, name: str):
        self.name = name

    def registries(self, toolboxes: Sequence[str] = TOOLBOXES) -> List:
        return [getattr(importlib.import_module(f'{tb}.registry'), self.name) for tb in toolboxes]

    def register_module(self, name: Optional[str] = None, module=None,
                        toolboxes: Sequence[str] = TOOLBOXES) -> Callable:
        """Decorator (or direct call with ``module``) registering into the toolboxes (all three
        unless ``toolboxes`` names fewer, e.g. when one already ships an equivalent class)."""

        def _register(cls):
            for registry in self.registries(toolboxes):
                registry.register_module(name=name, module=cls)
            return cls

        if module is not None:
            return _register(module)
        return _register

    def __repr__(self) -> str:
        return f'MultiRegistry({self.name!r} of {", ".join(TOOLBOXES)})'


MODELS = MultiRegistry('MODELS')
DATASETS = MultiRegistry('DATASETS')
TRANSFORMS = MultiRegistry('TRANSFORMS')
HOOKS = MultiRegistry('HOOKS')
METRICS = MultiRegistry('METRICS')
OPTIM_WRAPPER_CONSTRUCTORS = MultiRegistry('OPTIM_WRAPPER_CONSTRUCTORS')
