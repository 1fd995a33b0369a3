"""Official DiT / DiT-LLaMA state dicts (``dit/models.py``) -> :class:`DiTLLaMA`'s.

The names are the official ones except the SwiGLU, which this package fuses: ``mlp.c_fc1`` (the
SiLU gate) and ``mlp.c_fc2`` (the up projection) become ``mlp.w12`` (gate rows first) and
``mlp.c_proj`` becomes ``mlp.w3``. DiT-LLaMA keeps DiT's frozen sin-cos ``pos_embed`` but never
adds it: it is dropped and reported. The original DiT's ``pos_embed`` is our buffer of the same
name (timm's ``Mlp`` names ``fc1``/``fc2`` are kept).
"""
import re
from typing import Dict, List, Tuple

import torch

__all__ = ['convert_official_dit']

_SWIGLU = re.compile(r'^(blocks\.\d+\.mlp)\.(c_fc1|c_fc2|c_proj)\.weight$')


def convert_official_dit(state_dict: Dict[str, torch.Tensor],
                         block_type: str = 'llama') -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """-> (our state dict, notes on what was dropped). Keys are not checked here: load the
    result strictly (or check it against the model's) to find any that do not fit."""
    if block_type not in ('llama', 'dit'):
        raise ValueError(f'convert_official_dit: block_type must be "llama" or "dit", '
                         f'got {block_type!r}.')
    out, notes, gates = {}, [], {}
    for key, value in state_dict.items():
        m = _SWIGLU.match(key)
        if key == 'pos_embed' and block_type == 'llama':
            notes.append(f'dropped pos_embed {tuple(value.shape)}: DiT-LLaMA keeps the frozen '
                         'sin-cos table but never adds it (RoPE replaces it)')
        elif m and m.group(2) == 'c_proj':
            out[f'{m.group(1)}.w3.weight'] = value
        elif m:
            gates.setdefault(m.group(1), {})[m.group(2)] = value
        else:
            out[key] = value
    for prefix, parts in gates.items():
        if set(parts) != {'c_fc1', 'c_fc2'}:
            raise ValueError(f'convert_official_dit: {prefix} has {sorted(parts)} of the SwiGLU '
                             'projections; c_fc1 and c_fc2 are needed together.')
        out[f'{prefix}.w12.weight'] = torch.cat([parts['c_fc1'], parts['c_fc2']], dim=0)
    return out, notes
