"""General helpers used across the package's families and tools."""
from .checkpoint_io import (WEIGHT_FILES, checkpoint_files, read_safetensors, read_sharded,
                            read_state_dict)

__all__ = ['WEIGHT_FILES', 'checkpoint_files', 'read_safetensors', 'read_sharded',
           'read_state_dict']
