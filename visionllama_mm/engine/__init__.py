"""Training glue shared by the three toolboxes."""
from .amp import CPUBF16AmpOptimWrapper
from .checkpoint import AtomicCheckpointHook
from .layer_decay import LayerwiseDecayOptimWrapperConstructor
from .reproducibility import ReproducibleRandomnessHook, ReproducibleSampler

__all__ = ['AtomicCheckpointHook', 'CPUBF16AmpOptimWrapper',
           'LayerwiseDecayOptimWrapperConstructor', 'ReproducibleRandomnessHook',
           'ReproducibleSampler']
