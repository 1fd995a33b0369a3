"""Turn the authors' released checkpoints into checkpoints of this package.

Each released format is recognised from its keys; the key mapping itself lives beside the model it
targets (``convert_official_*``), so tests and ``tools/model_converters/`` share one code path.
This package's own checkpoints (``tools/train.py`` outputs, converted files) are recognised too and
refused with :class:`AlreadyConvertedError` ("already a visionllama_mm checkpoint, no conversion
needed"): they load as they are.
Sources are read with ``torch.load(weights_only=True)``; the only non-tensor objects allowed are
those the official training scripts store beside the weights (``argparse.Namespace`` in DeiT-style
checkpoints, mmengine's logging state in mmpretrain-fork ones).
"""
import argparse
import os.path as osp
import re
from typing import Callable, Dict, List, Tuple

import torch

from .compat import load_checkpoint_file

__all__ = ['KINDS', 'AlreadyConvertedError', 'load_source', 'detect_kind', 'convert_state_dict',
           'convert_file']


def _is_deit_plain(sd: Dict) -> bool:
    return 'blocks.0.mlp.c_fc1.weight' in sd and 'blocks.0.attn.qkv.weight' in sd


def _is_deit_pyramid(sd: Dict) -> bool:
    return 'patch_embeds.0.proj.weight' in sd and 'blocks.0.0.norm1.weight' in sd


def _convert_pyramid(sd):
    from .models.backbones.pyramid_vision_llama import convert_official_pyramid
    return convert_official_pyramid(sd)


def _is_mmpretrain_fork(sd: Dict) -> bool:
    # the fork keeps a frozen, never-added ``backbone.pos_embed`` (spec §1.3); our models have none
    return ('backbone.pos_embed' in sd and 'backbone.layers.0.ffn.w12.weight' in sd
            and 'backbone.patch_embed.projection.weight' in sd)


# a block FFN key of our plain (``layers.i``) or pyramid (``stages.i.j``) backbone
_OWN_KEY = re.compile(r'(backbone\.)?(layers\.\d+|stages\.\d+\.\d+)\.ffn\.w12\.weight')


def _own_layout_key(sd: Dict) -> str:
    """The first key of this package's layout in ``sd``, or ''."""
    return next((k for k in sorted(map(str, sd)) if _OWN_KEY.fullmatch(k)), '')


def _convert_fork(sd):
    from .models.selfsup.mae_vision_llama import convert_official_mae
    return convert_official_mae(sd)


def _convert_plain(sd):
    from .models.backbones.vision_llama import convert_official_plain
    return convert_official_plain(sd)


# (name, where the weights sit in the file, detector on those weights, converter)
KINDS: List[Tuple[str, str, Callable[[Dict], bool], Callable[[Dict], Dict]]] = [
    ('deit-plain', 'model', _is_deit_plain, _convert_plain),
    ('deit-pyramid', 'model', _is_deit_pyramid, _convert_pyramid),
    ('mmpretrain-fork', 'state_dict', _is_mmpretrain_fork, _convert_fork),
]


def load_source(path: str) -> Dict:
    """Read a released checkpoint with ``weights_only=True`` (errors name the file and the fault:
    missing, not a torch checkpoint, truncated, or holding code)."""
    return load_checkpoint_file(path, map_location='cpu', extra_safe_globals=[argparse.Namespace])


class AlreadyConvertedError(ValueError):
    """The checkpoint is already in this package's layout: nothing to convert."""


def detect_kind(ckpt: Dict) -> Tuple[str, Dict]:
    """Which released format ``ckpt`` is -> (kind name, the weights dict).

    Raises:
        AlreadyConvertedError: ``ckpt`` is this package's own checkpoint (written by this
            converter, ``meta.source_format``, or by ``tools/train.py``: our key layout without the
            fork's frozen ``backbone.pos_embed``); it loads as it is.
        ValueError: no known format matches; the message shows the first keys.
    """
    if not isinstance(ckpt, dict):
        raise ValueError(f'a checkpoint must be a dict, got {type(ckpt).__name__}')
    for name, field, detect, _ in KINDS:
        weights = ckpt.get(field, None) if field else ckpt
        if isinstance(weights, dict) and detect(weights):
            return name, weights
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    if 'source_format' in meta:
        raise AlreadyConvertedError(
            f"already a visionllama_mm checkpoint, no conversion needed: converted from "
            f"{meta.get('converted_from', '?')} (format {meta['source_format']}) by this tool; "
            'load it directly (load_from=, or init_cfg=dict(type=\'Pretrained\', checkpoint=...))')
    for field in ('state_dict', None):
        weights = ckpt.get(field) if field else ckpt
        if isinstance(weights, dict) and _own_layout_key(weights):
            raise AlreadyConvertedError(
                'already a visionllama_mm checkpoint, no conversion needed: its '
                f"{'state_dict' if field else 'top-level dict'} has this package's key layout "
                f"({_own_layout_key(weights)}) and none of the released formats' keys (the fork's "
                'checkpoints carry a frozen backbone.pos_embed); load it directly')
    top = sorted(ckpt)[:8]
    inner = next((ckpt[k] for k in ('model', 'state_dict') if isinstance(ckpt.get(k), dict)), ckpt)
    sample = sorted(inner)[:8]
    raise ValueError(
        'unrecognised checkpoint: none of the known VisionLLaMA release formats '
        f'({", ".join(k[0] for k in KINDS)}) matches. Top-level keys: {top}; first weight keys: '
        f'{sample}')


def convert_state_dict(ckpt: Dict) -> Tuple[str, Dict]:
    """(kind, converted state dict) of a loaded released checkpoint."""
    kind, weights = detect_kind(ckpt)
    convert = next(k[3] for k in KINDS if k[0] == kind)
    return kind, convert(weights)


def convert_file(src: str, dst: str) -> str:
    """Convert ``src`` into ``dst`` (``{'state_dict', 'meta'}``, tensors only) -> the kind."""
    kind, state_dict = convert_state_dict(load_source(src))
    torch.save({'state_dict': state_dict,
                'meta': {'converted_from': osp.basename(src), 'source_format': kind}}, dst)
    return kind
