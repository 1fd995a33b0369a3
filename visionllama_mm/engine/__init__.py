"""Training glue shared by the three toolboxes."""
from .layer_decay import LayerwiseDecayOptimWrapperConstructor

__all__ = ['LayerwiseDecayOptimWrapperConstructor']
