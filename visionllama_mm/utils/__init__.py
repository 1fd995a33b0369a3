"""General helpers used across the package's families and tools."""
from .checkpoint_io import (WEIGHT_FILES, checkpoint_files, read_safetensors, read_sharded,
                            read_state_dict)
from .checksums import file_sha256, json_fingerprint, weights_checksum
from .files import (atomic_path, atomic_write, read_jsonl, replace_atomically, temporary_name,
                    write_json)

__all__ = ['WEIGHT_FILES', 'checkpoint_files', 'read_safetensors', 'read_sharded',
           'read_state_dict', 'file_sha256', 'json_fingerprint', 'weights_checksum',
           'atomic_path', 'atomic_write', 'read_jsonl', 'replace_atomically', 'temporary_name',
           'write_json']
