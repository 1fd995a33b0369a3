"""visionllama_mm: VisionLLaMA (plain, pyramid, MAE) for mmpretrain, mmseg and mmdet.

Importing the package applies the version shims (:mod:`visionllama_mm.compat`) and registers every
model, dataset, hook, optimizer wrapper and optimizer constructor into the registries of all three
toolboxes (:mod:`visionllama_mm.registry`). It does nothing else.
"""
from . import compat
from .version import __version__

compat.apply_all()

from . import datasets, engine, evaluation, models  # noqa: E402,F401  (registers everything)

__all__ = ['__version__']
