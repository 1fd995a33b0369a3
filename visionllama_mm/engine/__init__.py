"""Training glue shared by the three toolboxes."""
from .amp import CPUBF16AmpOptimWrapper
from .layer_decay import LayerwiseDecayOptimWrapperConstructor

__all__ = ['CPUBF16AmpOptimWrapper', 'LayerwiseDecayOptimWrapperConstructor']
