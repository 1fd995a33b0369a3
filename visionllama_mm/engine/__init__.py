"""Training glue shared by the three toolboxes."""
from .amp import CPUBF16AmpOptimWrapper
from .checkpoint import AtomicCheckpointHook
from .fsdp import ShardedDataParallel, transformer_block_wrap_policy
from .hooks import NonFiniteCheckHook
from .layer_decay import LayerwiseDecayOptimWrapperConstructor
from .reproducibility import ReproducibleRandomnessHook, ReproducibleSampler
from .runner import Runner

__all__ = ['AtomicCheckpointHook', 'CPUBF16AmpOptimWrapper',
           'LayerwiseDecayOptimWrapperConstructor', 'NonFiniteCheckHook',
           'ReproducibleRandomnessHook', 'ReproducibleSampler', 'Runner', 'ShardedDataParallel',
           'transformer_block_wrap_policy']
