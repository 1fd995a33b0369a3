"""OpenCLIP checkpoint keys <-> :class:`ContrastiveCLIP` keys.

OpenCLIP writes two layouts: ``CustomTextCLIP`` (every released
ViTamin model) keeps the text tower under ``text.``; plain ``CLIP`` keeps it at the top level
(``token_embedding``, ``transformer.resblocks``, ``ln_final``, ``text_projection``). The image
tower of a timm-backed model is ``visual.trunk.<timm name>`` with the bias-free projection
``visual.head.proj.weight`` (E, D). :func:`export_open_clip` writes the ``CustomTextCLIP``
layout back (the ViTamin family module's ``--to open_clip``).
"""
from typing import Dict, Optional

import torch

from ..backbones.vitamin_convert import convert_timm_vitamin, export_timm_vitamin

__all__ = ['convert_open_clip', 'convert_open_clip_text', 'export_open_clip',
           'export_open_clip_text', 'is_open_clip', 'text_state_dict']

_TEXT_TOP = ('token_embedding.', 'positional_embedding', 'transformer.resblocks.', 'ln_final.',
             'text_projection')
_BLOCK = {'ln_1': 'ln1', 'ln_2': 'ln2', 'attn.out_proj': 'attn.proj', 'mlp.c_fc': 'ffn.fc1',
          'mlp.c_proj': 'ffn.fc2'}


def is_open_clip(sd: Dict) -> bool:
    """An OpenCLIP state dict: ``logit_scale`` plus a text tower in either layout."""
    return 'logit_scale' in sd and ('text.token_embedding.weight' in sd
                                    or 'token_embedding.weight' in sd)


def convert_open_clip_text(sd: Dict[str, torch.Tensor], prefix: str = 'text.'
                           ) -> Dict[str, torch.Tensor]:
    """OpenCLIP text-tower keys (without their ``text.`` prefix, if any) -> ours under
    ``prefix``: ``transformer.resblocks.j`` -> ``blocks.j`` with ``ln_1/2`` -> ``ln1/2``,
    ``attn.in_proj_weight/bias`` -> ``attn.qkv.weight/bias``, ``attn.out_proj`` -> ``attn.proj``,
    ``mlp.c_fc/c_proj`` -> ``ffn.fc1/fc2``; embeddings, ``ln_final``, ``text_projection`` as they
    are; the causal ``attn_mask`` buffer is dropped.

    Raises:
        KeyError: for a key outside this layout (e.g. a text ``cls_emb`` or a Linear
            ``text_projection.weight``, which no ViTamin model has), naming it.
    """
    out: Dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key == 'attn_mask':
            continue
        if key.startswith('text_projection.'):
            raise KeyError(f'convert_open_clip_text: unsupported key {key!r} (a Linear text '
                           'projection; ViTamin text towers use a plain matrix)')
        if key in ('positional_embedding', 'text_projection') or key.startswith(
                ('token_embedding.', 'ln_final.')):
            out[prefix + key] = value
            continue
        parts = key.split('.')
        if key.startswith('transformer.resblocks.') and len(parts) >= 5:
            j, rest = parts[2], '.'.join(parts[3:])
            if rest in ('attn.in_proj_weight', 'attn.in_proj_bias'):
                name = 'attn.qkv.' + ('weight' if rest.endswith('weight') else 'bias')
            else:
                module, param = '.'.join(parts[3:-1]), parts[-1]
                if module not in _BLOCK:
                    raise KeyError(f'convert_open_clip_text: unexpected key {key!r}')
                name = f'{_BLOCK[module]}.{param}'
            out[f'{prefix}blocks.{j}.{name}'] = value
            continue
        raise KeyError(f'convert_open_clip_text: unexpected key {key!r}')
    return out


def convert_open_clip(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A whole OpenCLIP ViTamin checkpoint -> :class:`ContrastiveCLIP` keys: ``visual.trunk.*``
    through :func:`convert_timm_vitamin` into ``visual.``, ``visual.head.proj.weight`` ->
    ``visual_proj.weight``, the text tower through :func:`convert_open_clip_text`,
    ``logit_scale`` as it is.

    Raises:
        KeyError: for keys outside the layout (e.g. an attention-pool head), naming them.
    """
    trunk, text, out = {}, {}, {}
    for key, value in sd.items():
        if key.startswith('visual.trunk.'):
            trunk[key[len('visual.trunk.'):]] = value
        elif key == 'visual.head.proj.weight':
            out['visual_proj.weight'] = value
        elif key == 'logit_scale':
            out['logit_scale'] = value
        elif key.startswith('text.'):
            text[key[len('text.'):]] = value
        elif key.startswith(_TEXT_TOP) or key == 'attn_mask':
            text[key] = value
        else:
            raise KeyError(f'convert_open_clip: unexpected key {key!r} (expected visual.trunk.*, '
                           'visual.head.proj.weight, the text tower and logit_scale)')
    if 'head.weight' in trunk or 'head.bias' in trunk:
        raise KeyError('convert_open_clip: visual.trunk has a classifier head; expected the '
                       'projection at visual.head.proj.weight')
    out.update(convert_timm_vitamin(trunk, prefix='visual.'))
    out.update(convert_open_clip_text(text))
    return out


_OWN_BLOCK = {v: k for k, v in _BLOCK.items()}


def export_open_clip_text(sd: Dict[str, torch.Tensor], prefix: str = 'text.'
                          ) -> Dict[str, torch.Tensor]:
    """Our text-tower keys (relative to ``ContrastiveCLIP.text``) -> OpenCLIP's under ``prefix``,
    the inverse of :func:`convert_open_clip_text`.

    Raises:
        KeyError: for a key OpenCLIP's text tower has no counterpart of, naming it.
    """
    out: Dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key in ('positional_embedding', 'text_projection') or key.startswith(
                ('token_embedding.', 'ln_final.')):
            out[prefix + key] = value
            continue
        parts = key.split('.')
        if parts[0] == 'blocks' and len(parts) >= 4:
            j, module, param = parts[1], '.'.join(parts[2:-1]), parts[-1]
            block = f'{prefix}transformer.resblocks.{j}.'
            if module == 'attn.qkv':
                out[block + f'attn.in_proj_{param}'] = value
                continue
            if module in _OWN_BLOCK:
                out[block + f'{_OWN_BLOCK[module]}.{param}'] = value
                continue
        raise KeyError(f'export_open_clip_text: {key!r} has no OpenCLIP counterpart')
    return out


def export_open_clip(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """:class:`ContrastiveCLIP` keys with a ViTamin image tower -> OpenCLIP's ``CustomTextCLIP``
    ViTamin layout: ``visual.*`` through :func:`export_timm_vitamin` into ``visual.trunk.``,
    ``visual_proj.weight`` -> ``visual.head.proj.weight``, ``text.*`` through
    :func:`export_open_clip_text`, ``logit_scale`` as it is.

    Raises:
        KeyError: for keys outside the layout, naming them.
    """
    out = {'visual.trunk.' + k: v for k, v in export_timm_vitamin(sd, prefix='visual.').items()}
    text = {k[len('text.'):]: v for k, v in sd.items() if k.startswith('text.')}
    out.update(export_open_clip_text(text))
    stray = sorted(k for k in sd if not k.startswith(('visual.', 'text.'))
                   and k not in ('visual_proj.weight', 'logit_scale'))
    if stray:
        raise KeyError(f'export_open_clip: keys without an OpenCLIP counterpart: {stray[:8]}')
    for key, theirs in (('visual_proj.weight', 'visual.head.proj.weight'),
                        ('logit_scale', 'logit_scale')):
        if key not in sd:
            raise KeyError(f'export_open_clip: no {key!r} (OpenCLIP needs {theirs})')
        out[theirs] = sd[key]
    return out


def _weights(ckpt: Dict) -> Dict:
    for field in ('state_dict', 'model'):
        if isinstance(ckpt.get(field), dict):
            return ckpt[field]
    return ckpt


def text_state_dict(ckpt: Dict, filename: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """The text tower (keys relative to ``ContrastiveCLIP.text``) and ``logit_scale`` of a loaded
    checkpoint: this package's CLIP checkpoint (``text.*``) or a released OpenCLIP one (either
    layout, ``module.`` prefixes of DDP runs removed)."""
    sd = _weights(ckpt)
    if any(k.startswith('module.') for k in sd):
        sd = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}
    if 'text.token_embedding.weight' in sd and any(k.startswith('text.blocks.') for k in sd):
        text = {k[len('text.'):]: v for k, v in sd.items() if k.startswith('text.')}
    elif is_open_clip(sd):
        raw = {k[len('text.'):] if k.startswith('text.') else k: v for k, v in sd.items()
               if k.startswith('text.') or k.startswith(_TEXT_TOP) or k == 'attn_mask'}
        text = convert_open_clip_text(raw, prefix='')
    else:
        raise ValueError(f'{filename or "checkpoint"} has no CLIP text tower: expected this '
                         "package's CLIP checkpoint (text.* keys) or an OpenCLIP one; first "
                         f'keys: {sorted(sd)[:6]}')
    if 'logit_scale' in sd:
        text['logit_scale'] = sd['logit_scale']
    return text
