"""Read a checkpoint in any of the forms released weights come in.

:func:`read_state_dict` takes

* a torch file (``.pth``, ``.pt``, ``.bin``, ``.ckpt``): read with ``torch.load(weights_only=True)``
  by :func:`visionllama_mm.compat.load_checkpoint_file`; its dict comes back as saved
  (``{'model', 'ema', 'args', ...}``, ``{'state_dict', 'meta'}`` or a bare state dict), and the
  caller picks the weights out of it;
* a ``.safetensors`` file (a flat dict of tensors), read with ``safetensors``;
* a sharded checkpoint: its ``*.index.json`` (``model.safetensors.index.json``,
  ``pytorch_model.bin.index.json``, as transformers and ``huggingface_hub`` write them), read
  shard by shard through its ``weight_map``, every shard checked against it;
* a folder (a hub snapshot): the first of :data:`WEIGHT_FILES` it holds.

Which reader a file gets is decided by its first bytes, not by its name, so a ``.safetensors`` file
saved as ``.pth`` reads too. Nothing in a file is executed, and each fault (a missing shard, a
truncated or foreign file, shards that disagree with their index) is one error naming the file.
"""
import json
import os
import os.path as osp
import struct
from typing import Dict, List, Optional, Tuple

import torch

__all__ = ['WEIGHT_FILES', 'checkpoint_files', 'read_safetensors', 'read_sharded',
           'read_state_dict']

#: what a folder is read from, first found wins (transformers' order: safetensors before torch
#: files, a single file before an index; then OpenCLIP's and diffusers' names)
WEIGHT_FILES = ('model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin',
                'pytorch_model.bin.index.json', 'open_clip_model.safetensors',
                'open_clip_pytorch_model.bin', 'diffusion_pytorch_model.safetensors',
                'diffusion_pytorch_model.bin')


def checkpoint_files(path: str) -> Tuple[Optional[str], List[str]]:
    """(the index or ``None``, the weight files) that :func:`read_state_dict` reads for ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist, or is a folder holding none of
            :data:`WEIGHT_FILES` (the message lists what it holds).
        ValueError: an index that is not one (not JSON, no ``weight_map``).
    """
    path = osp.expanduser(path)
    if osp.isdir(path):
        name = next((n for n in WEIGHT_FILES if osp.isfile(osp.join(path, n))), None)
        if name is None:
            found = sorted(os.listdir(path))
            raise FileNotFoundError(
                f'{path}: no {", ".join(WEIGHT_FILES[:-1])} or {WEIGHT_FILES[-1]} in this folder; '
                f'found {found[:12]}{" ..." if len(found) > 12 else ""}. Give the weights file '
                'itself as the path')
        path = osp.join(path, name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} can not be found.')
    if not path.endswith('.index.json'):
        return None, [path]
    weight_map = _weight_map(path)
    folder = osp.dirname(path)
    return path, [osp.join(folder, name) for name in sorted(set(weight_map.values()))]


def read_state_dict(path: str, map_location='cpu', extra_safe_globals=()) -> Dict:
    """The checkpoint at ``path`` (a file, a shard index or a folder; see the module's docstring).

    Args:
        path: Local file or folder.
        map_location: As in ``torch.load``; safetensors files go to this device when it is a
            device name, else to the CPU.
        extra_safe_globals: More classes a torch file may hold, as in
            :func:`~visionllama_mm.compat.load_checkpoint_file` (e.g. ``argparse.Namespace``).

    Returns:
        A torch file's dict as saved; for safetensors and sharded checkpoints, the flat dict of
        tensors.

    Raises:
        FileNotFoundError: no such file, a folder without weights, a shard the index names that
            is missing.
        ValueError: a file that is neither a torch checkpoint nor a safetensors file, a truncated
            one, an index whose shards disagree with its ``weight_map`` (the keys are named).
        RuntimeError: a torch file holding code or other objects ``weights_only`` refuses.
    """
    index, files = checkpoint_files(path)
    if index is not None:
        return read_sharded(index, map_location, extra_safe_globals)
    return _read_file(files[0], map_location, extra_safe_globals)


def read_safetensors(path: str, map_location='cpu') -> Dict[str, torch.Tensor]:
    """A ``.safetensors`` file -> its tensors; a file that is not one gets one line naming it and
    its fault (safetensors' own errors, e.g. 'header too large', name neither)."""
    fault = _safetensors_fault(path)
    if fault:
        raise ValueError(f'{path} is not a readable safetensors file: {fault}')
    return _load_safetensors(path, map_location)


def _load_safetensors(path: str, map_location) -> Dict[str, torch.Tensor]:
    """A file whose layout :func:`_safetensors_fault` accepted -> its tensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    device = str(map_location) if isinstance(map_location, (str, torch.device)) else 'cpu'
    try:
        return load_file(path, device=device)
    except SafetensorError as err:
        raise ValueError(f'{path} is not a readable safetensors file: {err}') from err


def read_sharded(index: str, map_location='cpu', extra_safe_globals=()) -> Dict[str, torch.Tensor]:
    """All tensors of a sharded checkpoint, from its ``*.index.json``; each shard must hold
    exactly the keys its ``weight_map`` assigns to it.

    Raises:
        FileNotFoundError: shards the index names are missing (all of them are named).
        ValueError: the index is not one, a shard is not a flat dict of tensors, or shards and
            ``weight_map`` disagree (the keys, by shard).
    """
    weight_map = _weight_map(index)
    folder = osp.dirname(index)
    shards: Dict[str, List[str]] = {}
    for key, name in weight_map.items():
        shards.setdefault(name, []).append(key)
    missing = sorted(n for n in shards if not osp.isfile(osp.join(folder, n)))
    if missing:
        raise FileNotFoundError(
            f'{index}: its weight_map names the shard(s) {missing}, which are not in '
            f'{folder or "."}; found {sorted(os.listdir(folder or "."))[:12]}')
    state_dict, problems = {}, []
    for name in sorted(shards):
        path = osp.join(folder, name)
        shard = _read_file(path, map_location, extra_safe_globals)
        if not isinstance(shard, dict) or not all(isinstance(v, torch.Tensor)
                                                  for v in shard.values()):
            raise ValueError(f'{path}: a shard of {index} must be a flat dict of tensors, got '
                             f'{_describe(shard)}')
        lacking = sorted(set(shards[name]) - set(shard))
        if lacking:
            problems.append(f'{name} lacks {_keys(lacking)}, which the weight_map puts there')
        extra = sorted(set(shard) - set(shards[name]))
        if extra:
            where = sorted({weight_map.get(k, 'nowhere') for k in extra})
            problems.append(f'{name} holds {_keys(extra)}, which the weight_map puts in '
                            f'{", ".join(where)}')
        state_dict.update({k: v for k, v in shard.items() if weight_map.get(k) == name})
    if problems:
        raise ValueError(f'{index}: the shards disagree with its weight_map: '
                         + '; '.join(problems))
    return state_dict


# --------------------------------------------------------------------------------------------------
def _read_file(path: str, map_location, extra_safe_globals):
    """One file, by its content: a whole safetensors layout is read with safetensors, anything else
    with the torch loader, whose errors say what the file is instead ('not a torch checkpoint:
    it looks like a text file ...'); a ``.safetensors`` name gets the safetensors fault."""
    fault = _safetensors_fault(path)
    if not fault:
        return _load_safetensors(path, map_location)
    if path.endswith('.safetensors'):  # torch.load, too, reads this name with safetensors
        raise ValueError(f'{path} is not a readable safetensors file: {fault}')
    from ..compat import load_checkpoint_file
    return load_checkpoint_file(path, map_location=map_location,
                                extra_safe_globals=extra_safe_globals)


def _safetensors_fault(path: str) -> str:
    """'' when ``path`` has a whole safetensors layout (an 8-byte header length, a JSON header,
    tensor data covering the rest of the file), else what is wrong, in a few words."""
    from ..compat import _describe_start  # what a file that is not a checkpoint looks like
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(64)
        if size < 10 or head[8:9] != b'{':  # the header length may well start with 0x80
            if head.startswith(b'PK\x03\x04') or head[:1] == b'\x80':
                return 'it is a torch.save file (a zip archive or a pickle); give it a .pth name'
            return (f'{_describe_start(head)}; a safetensors file starts with the 8-byte length '
                    'of its JSON header, then "{"')
        n = struct.unpack('<Q', head[:8])[0]
        if 8 + n > size:
            return (f'truncated: its header says {n} bytes of JSON, the file has {size} bytes '
                    'in all')
        f.seek(8)
        try:
            header = json.loads(f.read(n))
        except ValueError as err:
            return f'its JSON header does not parse ({err})'
    try:
        need = max((int(v['data_offsets'][1]) for k, v in header.items() if k != '__metadata__'),
                   default=0)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return 'its JSON header is not a table of tensors with data_offsets'
    data = size - 8 - n
    if need > data:
        return (f'truncated: its tensors need {need} bytes of data after the header, the file has '
                f'{data}')
    if need < data:
        return f'{data - need} bytes after the last tensor (two files joined, or a damaged file)'
    return ''


def _weight_map(index: str) -> Dict[str, str]:
    try:
        with open(index) as f:
            content = json.load(f)
    except ValueError as err:
        raise ValueError(f'{index} is not a shard index: not JSON ({err})') from err
    weight_map = content.get('weight_map') if isinstance(content, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        what = (f'top-level keys {sorted(content)[:8]}' if isinstance(content, dict)
                else f'a JSON {type(content).__name__}')
        raise ValueError(f'{index} is not a shard index: no "weight_map" of tensor name -> shard '
                         f'file ({what})')
    return weight_map


def _keys(keys: List[str]) -> str:
    return f'{keys[:5]}{f" and {len(keys) - 5} more" if len(keys) > 5 else ""} ({len(keys)})'


def _describe(obj) -> str:
    if isinstance(obj, dict):
        kinds = sorted({type(v).__name__ for v in obj.values() if not isinstance(v, torch.Tensor)})
        return f'a dict with {", ".join(kinds)} values (keys: {sorted(map(str, obj))[:8]})'
    return type(obj).__name__
