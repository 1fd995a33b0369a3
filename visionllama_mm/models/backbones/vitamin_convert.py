"""ViTamin checkpoints in and out: timm's ``vitamin_*`` image tower and OpenCLIP's ViTamin CLIP.

Read (``tools/model_converters/vitamin_official.py SRC DST``):

- ``timm-vitamin``: timm ``vitamin_*`` state dicts (bare, or under ``'state_dict'`` / ``'model'``)
  -> ``ImageClassifier`` keys: ``backbone.*`` and timm's linear head as ``head.fc``.
- ``open-clip-vitamin``: OpenCLIP ViTamin CLIP checkpoints (bare, or under ``'state_dict'``;
  ``module.`` prefixes of DDP runs removed) -> ``ContrastiveCLIP`` keys (see ``clip_convert``).

Write (``... SRC DST --to timm|open_clip``), from this package's checkpoints:

- ``timm``: the image tower of an ``ImageClassifier`` (``backbone.*``, its ``head.fc`` as timm's
  ``head``), of a ``ContrastiveCLIP`` (``visual.*``: a headless timm model, ``num_classes=0``) or a
  bare ``ViTamin`` -> the keys of ``timm.create_model('vitamin_<arch>_<size>')``.
- ``open_clip``: a ``ContrastiveCLIP`` with a ViTamin image tower -> the keys of
  ``open_clip.create_model('ViTamin-<arch>')`` (``CustomTextCLIP``: ``visual.trunk.*``,
  ``visual.head.proj.weight``, ``text.*``, ``logit_scale``).

timm's names differ from ours in the hybrid stem (``patch_embed.backbone.stem`` / ``.stages`` /
``.pool`` = our ``stem`` / ``stages`` / ``transition``), the block norms (``norm1/2`` = ``ln1/2``)
and the GeGLU MLP, whose gate ``mlp.w0`` and up projection ``mlp.w1`` are one fused ``ffn.w12``
here (gate rows first).
"""
import re
from typing import Dict, Optional, Tuple

import torch

from ...converters import AlreadyConvertedError, without_module_prefix

__all__ = ['FAMILY', 'FORMATS', 'EXPORTS', 'detect', 'to_ours', 'from_ours',
           'convert_timm_vitamin', 'export_timm_vitamin', 'own_layout_key']

FAMILY = 'ViTamin'
FORMATS = ('timm-vitamin', 'open-clip-vitamin')
EXPORTS = ('timm', 'open_clip')

# timm's image tower keeps the MBConv part under ``patch_embed.backbone.`` and the GeGLU gate as
# ``mlp.w0`` (ours: ``stem``, ``blocks.i.ffn.w12``); OpenCLIP's ViTamin CLIP models hold that
# tower under ``visual.trunk.`` beside ``logit_scale``
_TIMM_KEYS = ('patch_embed.backbone.stem.conv1.weight', 'blocks.0.mlp.w0.weight')
# this package's ViTamin layout under a prefix (ImageClassifier / dense models: ``backbone.``,
# ContrastiveCLIP: ``visual.``, a bare backbone: ''); none of these occurs in a released format
_OWN_PARTS = ('stem.conv1.weight', 'transition.proj.weight', 'blocks.0.ffn.w12.weight')
_BLOCK_NAMES = {'norm1': 'ln1', 'norm2': 'ln2', 'attn.qkv': 'attn.qkv', 'attn.proj': 'attn.proj',
                'mlp.norm': 'ffn.norm', 'mlp.w2': 'ffn.w3'}


def _is_timm(sd: Dict) -> bool:
    return all(k in sd for k in _TIMM_KEYS)


def _is_open_clip(sd: Dict) -> bool:
    return any(p + 'logit_scale' in sd and all(f'{p}visual.trunk.{k}' in sd for k in _TIMM_KEYS)
               for p in ('', 'module.'))


def own_layout_key(sd: Dict) -> str:
    """A key showing this package's ViTamin or CLIP layout in ``sd``, or ''."""
    for prefix in ('backbone.', 'visual.', ''):
        if all(prefix + k in sd for k in _OWN_PARTS):
            return prefix + 'transition.proj.weight'
    if 'visual_proj.weight' in sd and 'text.blocks.0.attn.qkv.weight' in sd:
        return 'text.blocks.0.attn.qkv.weight'
    return ''


def detect(ckpt: Dict) -> Optional[Tuple[str, Dict]]:
    """``('timm-vitamin' | 'open-clip-vitamin', weights)`` or None.

    timm: a bare state dict (``model.state_dict()``), its train.py's ``{'state_dict', ...}``, or
    ``{'model': ...}``. OpenCLIP: the released ``open_clip_pytorch_model.bin`` (a bare state dict)
    or a training checkpoint ``{'epoch', 'name', 'state_dict' (``module.`` keys under DDP), ...}``.

    Raises:
        AlreadyConvertedError: ``ckpt`` (or its ``state_dict``) has this package's ViTamin / CLIP
            layout (``stem``, ``transition`` and ``blocks.i.ffn.w12`` under ``backbone.``,
            ``visual.`` or no prefix, or ``visual_proj`` with ``text.blocks``).
    """
    for field in ('', 'state_dict', 'model'):
        weights = ckpt.get(field) if field else ckpt
        if isinstance(weights, dict) and _is_timm(weights):
            return 'timm-vitamin', weights
    for field in ('', 'state_dict'):
        weights = ckpt.get(field) if field else ckpt
        if isinstance(weights, dict) and _is_open_clip(weights):
            return 'open-clip-vitamin', weights
    for field in ('state_dict', ''):
        weights = ckpt.get(field) if field else ckpt
        if isinstance(weights, dict) and own_layout_key(weights):
            raise AlreadyConvertedError(
                'already a visionllama_mm checkpoint, no conversion needed: its '
                f"{'state_dict' if field else 'top-level dict'} has this package's ViTamin / CLIP "
                f'key layout ({own_layout_key(weights)}) and none of the released formats\' '
                "keys (timm's patch_embed.backbone.*, OpenCLIP's visual.trunk.*); load it directly")
    return None


# ------------------------------------------------------------------------------------- import
def convert_timm_vitamin(state_dict: Dict[str, torch.Tensor],
                         prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """timm ``vitamin_*`` image-tower keys (``head.*`` excluded) -> ours under ``prefix``.

    ``patch_embed.backbone.stem`` / ``.stages`` -> ``stem`` / ``stages``;
    ``patch_embed.backbone.pool`` -> ``transition``; ``blocks.i.norm1/2`` -> ``ln1/2``;
    ``blocks.i.mlp.norm`` -> ``ffn.norm``; ``mlp.w0`` (GELU gate) and ``mlp.w1`` stacked into
    ``ffn.w12`` (gate rows first); ``mlp.w2`` -> ``ffn.w3``; ``pos_embed`` and ``fc_norm`` as
    they are.

    Raises:
        KeyError: for a key outside this layout, naming it.
    """
    out: Dict[str, torch.Tensor] = {}
    gates: Dict[str, Dict[str, torch.Tensor]] = {}
    ups: Dict[str, Dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        parts = key.split('.')
        if key.startswith('patch_embed.backbone.stem.') or key.startswith(
                'patch_embed.backbone.stages.'):
            out[prefix + key[len('patch_embed.backbone.'):]] = value
        elif key.startswith('patch_embed.backbone.pool.'):
            out[prefix + 'transition.' + key[len('patch_embed.backbone.pool.'):]] = value
        elif key == 'pos_embed' or key.startswith('fc_norm.'):
            out[prefix + key] = value
        elif parts[0] == 'blocks' and len(parts) >= 4:
            i, module, param = parts[1], '.'.join(parts[2:-1]), parts[-1]
            if module == 'mlp.w0':
                gates.setdefault(i, {})[param] = value
            elif module == 'mlp.w1':
                ups.setdefault(i, {})[param] = value
            elif module in _BLOCK_NAMES:
                out[f'{prefix}blocks.{i}.{_BLOCK_NAMES[module]}.{param}'] = value
            else:
                raise KeyError(f'convert_timm_vitamin: unexpected key {key!r}')
        else:
            raise KeyError(f'convert_timm_vitamin: unexpected key {key!r}')
    if set(gates) != set(ups) or any(set(gates[i]) != set(ups[i]) for i in gates):
        raise KeyError('convert_timm_vitamin: mlp.w0 and mlp.w1 do not pair up in blocks '
                       f'{sorted(set(gates) ^ set(ups))}')
    for i in gates:
        for param in gates[i]:
            out[f'{prefix}blocks.{i}.ffn.w12.{param}'] = torch.cat([gates[i][param],
                                                                   ups[i][param]], dim=0)
    return out


def _timm_to_ours(sd: Dict) -> Dict:
    head = {k: v for k, v in sd.items() if k.startswith('head.')}
    unknown = sorted(set(head) - {'head.weight', 'head.bias'})
    if unknown:
        raise KeyError(f'timm-vitamin: unexpected head keys {unknown} (expected the linear '
                       'head.weight / head.bias)')
    out = convert_timm_vitamin({k: v for k, v in sd.items() if k not in head}, prefix='backbone.')
    out.update({'head.fc.' + k[len('head.'):]: v for k, v in head.items()})
    return out


def to_ours(weights: Dict, fmt: str, **options) -> Dict:
    """A ``timm-vitamin`` state dict -> ``ImageClassifier`` keys; an ``open-clip-vitamin`` one ->
    ``ContrastiveCLIP`` keys. Keys outside the layout raise a ``KeyError`` naming them."""
    if fmt == 'timm-vitamin':
        return _timm_to_ours(weights)
    if fmt == 'open-clip-vitamin':
        from ..multimodal.clip_convert import convert_open_clip
        return convert_open_clip(without_module_prefix(weights))
    raise ValueError(f'ViTamin: unknown format {fmt!r}; formats: {", ".join(FORMATS)}')


# ------------------------------------------------------------------------------------- export
_OWN_BLOCK = {v: k for k, v in _BLOCK_NAMES.items()}
_BLOCK_KEY = re.compile(r'blocks\.(\d+)\.(.+)\.(weight|bias)')


def export_timm_vitamin(state_dict: Dict[str, torch.Tensor],
                        prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """Our ViTamin keys under ``prefix`` (other keys ignored) -> timm ``vitamin_*`` keys, the
    inverse of :func:`convert_timm_vitamin`: ``ffn.w12`` is split into ``mlp.w0`` (its first
    half, the gate) and ``mlp.w1``.

    Raises:
        KeyError: for a key under ``prefix`` outside this layout (e.g. a ``featmap`` model's
            per-stage norms), naming it.
    """
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        block = _BLOCK_KEY.fullmatch(name)
        if name.startswith(('stem.', 'stages.')):
            out['patch_embed.backbone.' + name] = value
        elif name.startswith('transition.'):
            out['patch_embed.backbone.pool.' + name[len('transition.'):]] = value
        elif name == 'pos_embed' or name.startswith('fc_norm.'):
            out[name] = value
        elif block and block.group(2) == 'ffn.w12':
            i, param = block.group(1), block.group(3)
            gate, up = value.chunk(2, dim=0)
            out[f'blocks.{i}.mlp.w0.{param}'] = gate.contiguous()
            out[f'blocks.{i}.mlp.w1.{param}'] = up.contiguous()
        elif block and block.group(2) in _OWN_BLOCK:
            out[f'blocks.{block.group(1)}.{_OWN_BLOCK[block.group(2)]}.{block.group(3)}'] = value
        else:
            raise KeyError(f'export_timm_vitamin: {key!r} has no timm vitamin_* counterpart')
    return out


def _tower_prefix(state_dict: Dict) -> str:
    for prefix in ('backbone.', 'visual.', ''):
        if all(prefix + k in state_dict for k in _OWN_PARTS):
            return prefix
    raise ValueError(
        "not this package's ViTamin checkpoint: none of backbone.*, visual.* or the bare backbone "
        f"has {', '.join(_OWN_PARTS)}; first keys: {sorted(map(str, state_dict))[:6]}")


def _to_timm(state_dict: Dict) -> Dict:
    prefix = _tower_prefix(state_dict)
    out = export_timm_vitamin(state_dict, prefix)
    if prefix == 'backbone.':
        head = {k: v for k, v in state_dict.items() if k.startswith('head.')}
        unknown = sorted(set(head) - {'head.fc.weight', 'head.fc.bias'})
        if unknown:
            raise KeyError(f'--to timm: the head has {unknown}; timm vitamin_* models have one '
                           'linear head (a LinearClsHead: head.fc.weight / head.fc.bias)')
        out.update({'head.' + k[len('head.fc.'):]: v for k, v in head.items()})
        rest = set(state_dict) - set(head)
    else:  # a CLIP's image tower (its projection and text tower have no timm counterpart)
        rest = set(state_dict)
    stray = sorted(k for k in rest if not k.startswith(prefix)
                   and not (prefix == 'visual.' and (k.startswith('text.')
                                                     or k in ('visual_proj.weight',
                                                              'logit_scale'))))
    if stray:
        raise KeyError(f'--to timm: keys outside the ViTamin image tower: {stray[:8]}')
    return out


def _to_open_clip(state_dict: Dict) -> Dict:
    from ..multimodal.clip_convert import export_open_clip
    if not all('visual.' + k in state_dict for k in _OWN_PARTS):
        raise ValueError(
            '--to open_clip needs a ContrastiveCLIP checkpoint with a ViTamin image tower '
            f"(visual.{_OWN_PARTS[0]}, ...); first keys: {sorted(map(str, state_dict))[:6]}")
    return export_open_clip(state_dict)


def from_ours(state_dict: Dict, to: str, **options) -> Dict:
    """This package's checkpoint -> the keys of timm's ``vitamin_*`` (``to='timm'``) or of
    OpenCLIP's ViTamin CLIP (``to='open_clip'``); tensors are shared, not copied."""
    if to == 'timm':
        return _to_timm(state_dict)
    if to == 'open_clip':
        return _to_open_clip(state_dict)
    raise ValueError(f'ViTamin: cannot export to {to!r}; targets: {", ".join(EXPORTS)}')
