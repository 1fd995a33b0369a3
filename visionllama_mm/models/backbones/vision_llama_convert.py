"""VisionLLaMA checkpoints: the official releases -> this package's keys, and back (``--to
official``).

Release formats (``tools/model_converters/vision_llama_official.py`` detects them from the keys):

* ``deit-plain``: the official DeiT-code plain models (``{'model': sd}``, timm 0.3.2 layout:
  ``patch_embed.proj``, ``blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.c_fc1, mlp.c_fc2,
  mlp.c_proj, gamma_1, gamma_2}``, ``norm``, ``head``);
* ``deit-pyramid``: the official DeiT-code pyramid models (``pllama_wols_*``: ``patch_embeds.k``,
  ``blocks.k.i``, ``norm``, ``head``);
* ``mmpretrain-fork``: the official mmpretrain fork's MAE pre-training / fine-tuning checkpoints
  (``{'state_dict', 'meta'}``), whose names are ours plus a frozen, never-added
  ``backbone.pos_embed``.

``--to official`` writes an ``ImageClassifier`` of this package (plain or pyramid) in the DeiT
layout the first two formats use, as ``{'model': sd}``, which the official code's ``--finetune`` /
``--resume`` / ``--eval`` read; converting that file back gives the same state dict.

Official DiT / DiT-LLaMA checkpoints (image generation) share the plain models' SwiGLU and qkv
keys; :func:`detect` refuses them naming their own converter,
``tools/model_converters/dit_llama_official.py``.
"""
import os.path as osp
import re
from typing import Dict, Optional, Tuple

import torch

from ...converters import AlreadyConvertedError, without_module_prefix
from ..diffusion.convert import dit_checkpoint

__all__ = ['FAMILY', 'FORMATS', 'EXPORTS', 'detect', 'to_ours', 'from_ours', 'write_export',
           'convert_official_plain', 'convert_official_pyramid', 'convert_official_mae',
           'export_official_plain', 'export_official_pyramid']

FAMILY = 'VisionLLaMA'
FORMATS = ('deit-plain', 'deit-pyramid', 'mmpretrain-fork')
EXPORTS = ('official', )


def _is_deit_plain(sd: Dict) -> bool:
    return 'blocks.0.mlp.c_fc1.weight' in sd and 'blocks.0.attn.qkv.weight' in sd


def _is_deit_pyramid(sd: Dict) -> bool:
    return 'patch_embeds.0.proj.weight' in sd and 'blocks.0.0.norm1.weight' in sd


def _is_mmpretrain_fork(sd: Dict) -> bool:
    # the fork keeps a frozen, never-added ``backbone.pos_embed``; ours have none
    return ('backbone.pos_embed' in sd and 'backbone.layers.0.ffn.w12.weight' in sd
            and 'backbone.patch_embed.projection.weight' in sd)


# (format, where the weights sit in the file, detector on those weights)
_PLACES = (('deit-plain', 'model', _is_deit_plain), ('deit-pyramid', 'model', _is_deit_pyramid),
           ('mmpretrain-fork', 'state_dict', _is_mmpretrain_fork))

# a block FFN key of our plain (``layers.i``) or pyramid (``stages.i.j``) backbone
_OWN_KEY = re.compile(r'(backbone\.)?(layers\.\d+|stages\.\d+\.\d+)\.ffn\.w12\.weight')


def _own_layout_key(sd: Dict) -> str:
    """The first key of this package's VisionLLaMA layout in ``sd``, or ''."""
    return next((k for k in sorted(map(str, sd)) if _OWN_KEY.fullmatch(k)), '')


def detect(ckpt: Dict) -> Optional[Tuple[str, Dict]]:
    """(format, weights) of a VisionLLaMA release checkpoint, else ``None``.

    Raises:
        AlreadyConvertedError: this package's plain / pyramid layout (``layers.i.ffn.w12`` or
            ``stages.i.j.ffn.w12``, with or without ``backbone.``) without the fork's frozen
            ``backbone.pos_embed``: it loads as it is.
        ValueError: an official DiT / DiT-LLaMA checkpoint (the message names its converter).
    """
    dit = dit_checkpoint(ckpt)
    if dit:
        raise ValueError(
            f'{dit}: an image-generation denoiser, not a VisionLLaMA, ConvNeXt V2 or ViTamin '
            'backbone; convert it with tools/model_converters/dit_llama_official.py')
    for fmt, field, test in _PLACES:
        weights = ckpt.get(field)
        if isinstance(weights, dict) and test(weights):
            return fmt, weights
    for field in ('state_dict', None):
        weights = ckpt.get(field) if field else ckpt
        if isinstance(weights, dict) and _own_layout_key(weights):
            raise AlreadyConvertedError(
                'already a visionllama_mm checkpoint, no conversion needed: its '
                f"{'state_dict' if field else 'top-level dict'} has this package's key layout "
                f"({_own_layout_key(weights)}) and none of the released formats' keys (the fork's "
                'checkpoints carry a frozen backbone.pos_embed); load it directly')
    return None


def to_ours(weights: Dict, fmt: str) -> Dict[str, torch.Tensor]:
    """The weights of release format ``fmt`` -> this package's ``ImageClassifier`` (``deit-*``) or
    MAE / classifier (``mmpretrain-fork``) keys."""
    convert = {'deit-plain': convert_official_plain, 'deit-pyramid': convert_official_pyramid,
               'mmpretrain-fork': convert_official_mae}
    if fmt not in convert:
        raise ValueError(f'{FAMILY}: no release format {fmt!r}; known: {", ".join(FORMATS)}')
    return convert[fmt](weights)


def from_ours(state_dict: Dict, to: str) -> Dict[str, torch.Tensor]:
    """This package's plain or pyramid ``ImageClassifier`` state dict (or a bare backbone's)
    -> the official DeiT-code state dict (``to='official'``), the inverse of :func:`to_ours`."""
    if to not in EXPORTS:
        raise ValueError(f'{FAMILY} checkpoints export to {", ".join(EXPORTS)}, not {to!r}')
    sd = without_module_prefix(state_dict)
    if not any(k.startswith('backbone.') for k in sd):  # a bare backbone
        sd = {f'backbone.{k}': v for k, v in sd.items()}
    others = sorted(k for k in sd if k.split('.')[0] not in ('backbone', 'head'))
    if others:
        raise KeyError(
            f'--to official: keys outside the backbone and the linear head ({others[:5]}): the '
            'official DeiT code has image classifiers only (an MAE pre-training checkpoint is '
            "already in the official mmpretrain fork's layout, give it to the fork as it is)")
    if any(k.startswith('backbone.stages.') for k in sd):
        return export_official_pyramid(sd)
    if any(k.startswith('backbone.layers.') for k in sd):
        return export_official_plain(sd)
    raise KeyError('--to official: neither a plain (backbone.layers.i) nor a pyramid '
                   f'(backbone.stages.k.i) VisionLLaMA; first keys: {sorted(sd)[:8]}')


def write_export(state_dict: Dict, to: str, dst: str, args=None) -> str:
    """Write ``{'model': state_dict}`` (what the official code's ``torch.load(...)['model']``
    reads) to ``dst``, ``dst + '.pth'`` when it has no extension -> the path written."""
    if osp.isdir(dst):
        raise ValueError(f'{dst!r} is a folder; give a file name')
    if not osp.splitext(dst)[1]:
        dst += '.pth'
    if dst.endswith('.safetensors'):
        raise ValueError(f'{dst}: --to official writes a torch file ({{"model": state_dict}}, '
                         'read by the official code with torch.load); give DST ending in .pth')
    torch.save({'model': state_dict}, dst)
    return dst


# ---------------------------------------------------------------------------------------------
# official -> ours


def convert_official_plain(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official deit-code plain VisionLLaMA (timm 0.3.2 layout) -> our ``ImageClassifier`` keys.

    ``patch_embed.proj`` -> ``backbone.patch_embed.projection``; ``blocks.i`` ->
    ``backbone.layers.i`` (``norm1/2`` -> ``ln1/2``, ``mlp.c_fc1`` + ``mlp.c_fc2`` -> ``ffn.w12``
    (gate rows first), ``mlp.c_proj`` -> ``ffn.w3``, ``gamma_1/2`` -> ``ls1/2.weight``); ``norm`` ->
    ``backbone.ln1`` with a class token, ``backbone.ln2`` without one (the official GAP model
    normalises after pooling: use ``out_type='avg_featmap', final_norm=False``); ``head`` ->
    ``head.fc``.

    Raises:
        KeyError: for a key this layout does not have (e.g. an absolute ``pos_embed``).
    """
    with_cls = 'cls_token' in state_dict
    out: Dict[str, torch.Tensor] = {}
    gates, ups = {}, {}
    for key, value in state_dict.items():
        parts = key.split('.')
        if key == 'cls_token':
            out['backbone.cls_token'] = value
        elif key.startswith('patch_embed.proj.'):
            out[f'backbone.patch_embed.projection.{parts[-1]}'] = value
        elif key.startswith('norm.'):
            out[f'backbone.{"ln1" if with_cls else "ln2"}.{parts[-1]}'] = value
        elif key.startswith('head.'):
            out[f'head.fc.{parts[-1]}'] = value
        elif parts[0] == 'blocks':
            i, rest = parts[1], '.'.join(parts[2:])
            prefix = f'backbone.layers.{i}.'
            if rest in _PLAIN_BLOCK:
                out[prefix + _PLAIN_BLOCK[rest]] = value
            elif rest == 'mlp.c_fc1.weight':
                gates[i] = value
            elif rest == 'mlp.c_fc2.weight':
                ups[i] = value
            else:
                raise KeyError(f'convert_official_plain: unexpected key {key!r}')
        else:
            raise KeyError(f'convert_official_plain: unexpected key {key!r} (absolute position '
                           'embeddings are not part of the released VisionLLaMA models)')
    if set(gates) != set(ups):
        raise KeyError('convert_official_plain: mlp.c_fc1 and mlp.c_fc2 do not pair up in blocks '
                       f'{sorted(set(gates) ^ set(ups))}')
    for i in gates:
        out[f'backbone.layers.{i}.ffn.w12.weight'] = torch.cat([gates[i], ups[i]], dim=0)
    return out


# official plain block key -> ours (the SwiGLU halves are joined apart from this table)
_PLAIN_BLOCK = {'norm1.weight': 'ln1.weight', 'norm1.bias': 'ln1.bias',
                'norm2.weight': 'ln2.weight', 'norm2.bias': 'ln2.bias',
                'attn.qkv.weight': 'attn.qkv.weight', 'attn.qkv.bias': 'attn.qkv.bias',
                'attn.proj.weight': 'attn.proj.weight', 'attn.proj.bias': 'attn.proj.bias',
                'mlp.c_proj.weight': 'ffn.w3.weight', 'gamma_1': 'ls1.weight',
                'gamma_2': 'ls2.weight'}

# official pyramid block names -> ours (attention names are the same)
_PYRAMID_RENAMES = {'norm1': 'ln1', 'norm2': 'ln2', 'gamma_1': 'ls1.weight',
                    'gamma_2': 'ls2.weight', 'mlp.c_proj': 'ffn.w3'}


def convert_official_pyramid(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official deit-code ``pllama_wols_*`` checkpoint -> our ``ImageClassifier`` keys.

    ``patch_embeds.k.proj`` -> ``backbone.patch_embeds.k.projection``; ``blocks.k.i`` ->
    ``backbone.stages.k.i`` (``norm1/2`` -> ``ln1/2``, ``mlp.c_fc1`` + ``mlp.c_fc2`` ->
    ``ffn.w12``, ``mlp.c_proj`` -> ``ffn.w3``, ``gamma_1/2`` -> ``ls1/2.weight``, attention names
    unchanged: ``qkv``/``proj`` (LSA), ``q``/``kv``/``sr``/``norm``/``proj`` (GSA)); ``norm`` ->
    ``backbone.norm`` (used twice by the head, ``out_type='avg_featmap'``); ``head`` -> ``head.fc``.
    """
    out: Dict[str, torch.Tensor] = {}
    gates, ups = {}, {}
    for key, value in state_dict.items():
        parts = key.split('.')
        if parts[0] == 'patch_embeds':
            sub = 'projection' if parts[2] == 'proj' else parts[2]
            out[f'backbone.patch_embeds.{parts[1]}.{sub}.{parts[3]}'] = value
        elif parts[0] == 'blocks':
            prefix = f'backbone.stages.{parts[1]}.{parts[2]}.'
            rest = '.'.join(parts[3:])
            if rest.startswith('mlp.c_fc1'):
                gates[prefix] = value
            elif rest.startswith('mlp.c_fc2'):
                ups[prefix] = value
            elif rest.startswith('attn.'):
                out[prefix + rest] = value
            else:
                for old, new in _PYRAMID_RENAMES.items():
                    if rest == old or rest.startswith(old + '.'):
                        out[prefix + new + rest[len(old):]] = value
                        break
                else:
                    raise KeyError(f'convert_official_pyramid: unexpected key {key!r}')
        elif parts[0] == 'norm':
            out[f'backbone.norm.{parts[1]}'] = value
        elif parts[0] == 'head':
            out[f'head.fc.{parts[1]}'] = value
        else:
            raise KeyError(f'convert_official_pyramid: unexpected key {key!r}')
    if set(gates) != set(ups):
        raise KeyError('convert_official_pyramid: mlp.c_fc1 / mlp.c_fc2 do not pair up')
    for prefix in gates:
        out[prefix + 'ffn.w12.weight'] = torch.cat([gates[prefix], ups[prefix]], dim=0)
    return out


def convert_official_mae(state_dict):
    """Official mmpretrain-fork checkpoint (MAE pre-training or fine-tuning) -> our keys.

    The fork's names already match ours (``backbone.cls_token``, ``backbone.patch_embed.
    projection``, ``backbone.layers.i.{ln1, attn.qkv, attn.proj, ln2, ffn.w12, ffn.w3}``,
    ``backbone.ln1``/``ln2``, ``neck.*``, ``head.*``); its ``backbone.pos_embed`` is a frozen
    parameter that is never added and is dropped. Nothing else is touched.
    """
    return {k: v for k, v in state_dict.items() if k != 'backbone.pos_embed'}


# ---------------------------------------------------------------------------------------------
# ours -> official


def _split_swiglu(w12: torch.Tensor, key: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """``ffn.w12`` (gate rows first) -> the official ``c_fc1`` (gate) and ``c_fc2`` halves."""
    if w12.shape[0] % 2:
        raise ValueError(f'{key}: {w12.shape[0]} rows cannot be split into the two SwiGLU halves')
    gate, up = w12.chunk(2, dim=0)
    return gate.clone(), up.clone()


def _head_key(key: str) -> str:
    if not re.fullmatch(r'head\.fc\.(weight|bias)', key):
        raise KeyError(f'--to official: {key!r} is not a linear head key (head.fc.weight / '
                       'head.fc.bias); the official models end in one nn.Linear')
    return 'head.' + key.split('.')[-1]


def export_official_plain(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Our plain ``ImageClassifier`` keys -> the official deit-code plain model's.

    The official model has one final norm: after the blocks with a class token (ours: ``ln1``,
    ``out_type='cls_token'``), after pooling without one (ours: ``ln2``,
    ``out_type='avg_featmap', final_norm=False``); other combinations are refused.
    """
    block = {v: k for k, v in _PLAIN_BLOCK.items()}
    with_cls = 'backbone.cls_token' in sd
    final = 'ln1' if with_cls else 'ln2'
    norms = {k.split('.')[1] for k in sd if re.fullmatch(r'backbone\.ln[12]\.(weight|bias)', k)}
    if norms != {final}:
        raise KeyError(
            f'--to official: the official plain model {"with" if with_cls else "without"} a '
            f'class token has one final norm, ours {final} (backbone.{final}); this checkpoint '
            f'has {sorted(norms) or "none"} (with a class token use out_type=\'cls_token\'; '
            "without one out_type='avg_featmap', final_norm=False)")
    out: Dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key == 'backbone.cls_token':
            out['cls_token'] = value
        elif m := re.fullmatch(r'backbone\.patch_embed\.projection\.(weight|bias)', key):
            out[f'patch_embed.proj.{m[1]}'] = value
        elif m := re.fullmatch(rf'backbone\.{final}\.(weight|bias)', key):
            out[f'norm.{m[1]}'] = value
        elif m := re.fullmatch(r'backbone\.layers\.(\d+)\.ffn\.w12\.weight', key):
            out[f'blocks.{m[1]}.mlp.c_fc1.weight'], out[f'blocks.{m[1]}.mlp.c_fc2.weight'] = (
                _split_swiglu(value, key))
        elif (m := re.fullmatch(r'backbone\.layers\.(\d+)\.(.+)', key)) and m[2] in block:
            out[f'blocks.{m[1]}.{block[m[2]]}'] = value
        elif key.startswith('head.'):
            out[_head_key(key)] = value
        else:
            raise KeyError(f'--to official: {key!r} has no counterpart in the official plain '
                           'model (absolute position embedding, FFN biases, extra norms?)')
    return out


def export_official_pyramid(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Our pyramid ``ImageClassifier`` keys -> the official deit-code ``pllama_wols_*`` model's."""
    renames = {v: k for k, v in _PYRAMID_RENAMES.items()}
    out: Dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if m := re.fullmatch(r'backbone\.patch_embeds\.(\d+)\.(projection|norm)\.(weight|bias)',
                             key):
            out[f'patch_embeds.{m[1]}.{"proj" if m[2] == "projection" else "norm"}.{m[3]}'] = value
        elif m := re.fullmatch(r'backbone\.stages\.(\d+)\.(\d+)\.ffn\.w12\.weight', key):
            prefix = f'blocks.{m[1]}.{m[2]}.mlp.'
            out[prefix + 'c_fc1.weight'], out[prefix + 'c_fc2.weight'] = _split_swiglu(value, key)
        elif m := re.fullmatch(r'backbone\.stages\.(\d+)\.(\d+)\.(attn\..+)', key):
            out[f'blocks.{m[1]}.{m[2]}.{m[3]}'] = value
        elif m := re.fullmatch(r'backbone\.stages\.(\d+)\.(\d+)\.(ln[12]|ls[12]\.weight|ffn\.w3)'
                               r'(\.weight|\.bias)?', key):
            out[f'blocks.{m[1]}.{m[2]}.{renames[m[3]]}{m[4] or ""}'] = value
        elif m := re.fullmatch(r'backbone\.norm\.(weight|bias)', key):
            out[f'norm.{m[1]}'] = value
        elif key.startswith('head.'):
            out[_head_key(key)] = value
        else:
            raise KeyError(f'--to official: {key!r} has no counterpart in the official pyramid '
                           'model (a norm after each stage, FFN biases?)')
    return out
