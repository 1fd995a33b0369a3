"""Turn the authors' released checkpoints into checkpoints of this package.

Three families: VisionLLaMA (``tools/model_converters/vision_llama_official.py``), ConvNeXt V2
(``tools/model_converters/convnextv2_official.py``: the official dense and FCMAE checkpoints and
timm's ``convnextv2_*`` weights) and ViTamin (``tools/model_converters/vitamin_official.py``:
timm's ``vitamin_*`` state dicts and the OpenCLIP ViTamin CLIP checkpoints).
Each released format is recognised from its keys; the key mapping itself lives beside the model it
targets (``convert_official_*``, ``convert_timm_*``), so tests and ``tools/model_converters/`` share
one code path.
DiT / DiT-LLaMA checkpoints (image generation, ``{'model', 'ema', ...}`` or a bare state dict) are
recognised only to be refused with a message naming their own converter,
``tools/model_converters/dit_llama_official.py`` (whose SwiGLU keys would otherwise pass for
``deit-plain``).
This package's own checkpoints (``tools/train.py`` outputs, converted files) are recognised too and
refused with :class:`AlreadyConvertedError` ("already a visionllama_mm checkpoint, no conversion
needed"): they load as they are. So are mmpretrain's released ConvNeXt V2 checkpoints, whose layout
is ours.
Sources are read by :func:`visionllama_mm.utils.read_state_dict`: a torch file (``.pth``, ``.pt``,
``.bin``, ``.ckpt``) with ``torch.load(weights_only=True)``, where the only non-tensor objects
allowed are those the official training scripts store beside the weights (``argparse.Namespace`` in
DeiT-style checkpoints, mmengine's logging state in mmpretrain-fork ones); a ``.safetensors`` file
(timm's and the hub's format); a sharded checkpoint through its ``*.index.json``; or a hub folder
holding one of these.
"""
import argparse
import os
import os.path as osp
import re
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .utils.checkpoint_io import checkpoint_files, read_state_dict

__all__ = ['KINDS', 'AlreadyConvertedError', 'load_source', 'detect_kind', 'convert_state_dict',
           'convert_file', 'FAMILIES', 'run_cli']


def _is_deit_plain(sd: Dict) -> bool:
    return 'blocks.0.mlp.c_fc1.weight' in sd and 'blocks.0.attn.qkv.weight' in sd


def _is_deit_pyramid(sd: Dict) -> bool:
    return 'patch_embeds.0.proj.weight' in sd and 'blocks.0.0.norm1.weight' in sd


def _convert_pyramid(sd):
    from .models.backbones.pyramid_vision_llama import convert_official_pyramid
    return convert_official_pyramid(sd)


def _is_mmpretrain_fork(sd: Dict) -> bool:
    # the fork keeps a frozen, never-added ``backbone.pos_embed`` (vision_llama.py); ours have none
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


# ConvNeXt V2. Each detector asks for keys only its format has: the official layouts' ``dwconv``
# (ours and mmpretrain's say ``depthwise_conv``, timm's ``conv_dw``), ME's ``.kernel`` under
# ``encoder.`` for FCMAE, and a GRN parameter in every case, so that V1 checkpoints (same names,
# LayerScale ``gamma`` instead of GRN) are not taken for V2.
def _is_convnextv2_official(sd: Dict) -> bool:
    return ('downsample_layers.0.0.weight' in sd and 'stages.0.0.dwconv.weight' in sd
            and 'stages.0.0.grn.gamma' in sd)


def _is_convnextv2_fcmae(sd: Dict) -> bool:
    return ('encoder.downsample_layers.0.0.weight' in sd
            and 'encoder.stages.0.0.dwconv.kernel' in sd and 'encoder.stages.0.0.grn.gamma' in sd)


def _is_timm_convnextv2(sd: Dict) -> bool:
    return 'stem.0.weight' in sd and 'stages.0.blocks.0.mlp.grn.weight' in sd


def _convert_convnextv2_official(sd):
    from .models.backbones.convnextv2_convert import convert_official_convnextv2
    return convert_official_convnextv2(sd)


def _convert_convnextv2_fcmae(sd):
    from .models.backbones.convnextv2_convert import convert_official_fcmae
    return convert_official_fcmae(sd)


def _convert_timm_convnextv2(sd):
    from .models.backbones.convnextv2_convert import convert_timm_convnextv2
    return convert_timm_convnextv2(sd)


# a GRN gamma of our (= mmpretrain's) ConvNeXt V2 layout: 1-D, where the official dense layout
# (same name, no ``backbone.``) has (1, 1, 1, C)
_OWN_CONVNEXT_KEY = re.compile(r'(backbone\.)?stages\.\d+\.\d+\.grn\.gamma')


def _own_convnext_key(sd: Dict) -> str:
    """The first ConvNeXt V2 GRN key of this package's layout in ``sd``, or ''."""
    return next((k for k in sorted(map(str, sd)) if _OWN_CONVNEXT_KEY.fullmatch(k)
                 and isinstance(sd[k], torch.Tensor) and sd[k].dim() == 1), '')


# ViTamin. timm's image tower keeps the MBConv part under ``patch_embed.backbone.`` and the GeGLU
# gate as ``mlp.w0`` (ours: ``stem``, ``blocks.i.ffn.w12``); OpenCLIP's ViTamin CLIP models hold
# that tower under ``visual.trunk.`` beside ``logit_scale``, with ``module.`` in front of every key
# when a DDP run saved them.
_TIMM_VITAMIN_KEYS = ('patch_embed.backbone.stem.conv1.weight', 'blocks.0.mlp.w0.weight')


def _is_timm_vitamin(sd: Dict) -> bool:
    return all(k in sd for k in _TIMM_VITAMIN_KEYS)


def _without_module(sd: Dict) -> Dict:
    """``sd`` without the ``module.`` prefix a DDP-wrapped model puts on every key."""
    if any(isinstance(k, str) and k.startswith('module.') for k in sd):
        return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}
    return sd


def _is_open_clip_vitamin(sd: Dict) -> bool:
    return any(p + 'logit_scale' in sd and all(f'{p}visual.trunk.{k}' in sd
                                               for k in _TIMM_VITAMIN_KEYS)
               for p in ('', 'module.'))


def _convert_timm_vitamin(sd):
    from .models.backbones.vitamin import convert_timm_vitamin
    head = {k: v for k, v in sd.items() if k.startswith('head.')}
    unknown = sorted(set(head) - {'head.weight', 'head.bias'})
    if unknown:
        raise KeyError(f'timm-vitamin: unexpected head keys {unknown} (expected the linear '
                       'head.weight / head.bias)')
    out = convert_timm_vitamin({k: v for k, v in sd.items() if k not in head}, prefix='backbone.')
    out.update({'head.fc.' + k[len('head.'):]: v for k, v in head.items()})
    return out


def _convert_open_clip_vitamin(sd):
    from .models.multimodal.clip_convert import convert_open_clip
    return convert_open_clip(_without_module(sd))


# this package's ViTamin layout under ``prefix`` (ImageClassifier / dense models: ``backbone.``,
# ContrastiveCLIP: ``visual.``, a bare backbone: ''), and this package's CLIP layout (any image
# tower, ``text.blocks``); neither occurs in a released format
_OWN_VITAMIN_PARTS = ('stem.conv1.weight', 'transition.proj.weight', 'blocks.0.ffn.w12.weight')


def _own_vitamin_key(sd: Dict) -> str:
    """A key showing this package's ViTamin or CLIP layout in ``sd``, or ''."""
    for prefix in ('backbone.', 'visual.', ''):
        if all(prefix + k in sd for k in _OWN_VITAMIN_PARTS):
            return prefix + 'transition.proj.weight'
    if 'visual_proj.weight' in sd and 'text.blocks.0.attn.qkv.weight' in sd:
        return 'text.blocks.0.attn.qkv.weight'
    return ''


# DiT (``dit/models.py``) and DiT-LLaMA: timestep embedder and adaLN modulation, which no
# recognition backbone has. The official train.py saves {'model', 'ema', 'opt', 'args'}; the
# released sampling checkpoints are bare state dicts.
_DIT_KEYS = ('t_embedder.mlp.0.weight', 'blocks.0.adaLN_modulation.1.weight')


def _dit_checkpoint(ckpt: Dict) -> str:
    """A description of ``ckpt`` when it is an official DiT / DiT-LLaMA checkpoint, else ''."""
    for field in ('ema', 'model', ''):
        weights = ckpt.get(field) if field else ckpt
        if isinstance(weights, dict):
            weights = _without_module(weights)
            if all(k in weights for k in _DIT_KEYS):
                name = 'DiT-LLaMA' if 'blocks.0.mlp.c_fc1.weight' in weights else 'DiT'
                where = f'its {field!r} weights have' if field else 'its top-level dict has'
                return f'a {name} checkpoint ({where} {", ".join(_DIT_KEYS)})'
    return ''


# (name, where the weights sit in the file ('' = the top-level dict), detector on those weights,
# converter). A format stored in more than one place has one row per place.
KINDS: List[Tuple[str, str, Callable[[Dict], bool], Callable[[Dict], Dict]]] = [
    ('deit-plain', 'model', _is_deit_plain, _convert_plain),
    ('deit-pyramid', 'model', _is_deit_pyramid, _convert_pyramid),
    ('mmpretrain-fork', 'state_dict', _is_mmpretrain_fork, _convert_fork),
    # main_finetune.py / main_pretrain.py save {'model', 'optimizer', 'epoch', 'args', ...}
    ('convnextv2-official', 'model', _is_convnextv2_official, _convert_convnextv2_official),
    ('convnextv2-official', '', _is_convnextv2_official, _convert_convnextv2_official),
    ('convnextv2-fcmae', 'model', _is_convnextv2_fcmae, _convert_convnextv2_fcmae),
    ('convnextv2-fcmae', '', _is_convnextv2_fcmae, _convert_convnextv2_fcmae),
    # timm's hub weights are a bare state dict; its train.py writes {'state_dict', 'arch', ...}
    ('timm-convnextv2', '', _is_timm_convnextv2, _convert_timm_convnextv2),
    ('timm-convnextv2', 'state_dict', _is_timm_convnextv2, _convert_timm_convnextv2),
    # timm: a bare state dict (``model.state_dict()``), train.py's {'state_dict', ...}, or 'model'
    ('timm-vitamin', '', _is_timm_vitamin, _convert_timm_vitamin),
    ('timm-vitamin', 'state_dict', _is_timm_vitamin, _convert_timm_vitamin),
    ('timm-vitamin', 'model', _is_timm_vitamin, _convert_timm_vitamin),
    # OpenCLIP: the released open_clip_pytorch_model.bin is a bare state dict; its training
    # checkpoints are {'epoch', 'name', 'state_dict' (``module.`` keys under DDP), 'optimizer'}
    ('open-clip-vitamin', '', _is_open_clip_vitamin, _convert_open_clip_vitamin),
    ('open-clip-vitamin', 'state_dict', _is_open_clip_vitamin, _convert_open_clip_vitamin),
]

# model family -> its formats, in KINDS order
FAMILIES: Dict[str, Tuple[str, ...]] = {
    'VisionLLaMA': ('deit-plain', 'deit-pyramid', 'mmpretrain-fork'),
    'ConvNeXt V2': ('convnextv2-official', 'convnextv2-fcmae', 'timm-convnextv2'),
    'ViTamin': ('timm-vitamin', 'open-clip-vitamin'),
}
assert sorted(sum(FAMILIES.values(), ())) == sorted({k[0] for k in KINDS})


def _known_formats() -> str:
    return '; '.join(f'{family}: {", ".join(kinds)}' for family, kinds in FAMILIES.items())


def load_source(path: str) -> Dict:
    """Read a released checkpoint: a torch file (``weights_only=True``), a ``.safetensors`` file, a
    shard index or a folder holding one (errors name the file and the fault: missing, not a
    checkpoint, truncated, holding code, shards that disagree with their index)."""
    return read_state_dict(path, map_location='cpu', extra_safe_globals=[argparse.Namespace])


class AlreadyConvertedError(ValueError):
    """The checkpoint is already in this package's layout: nothing to convert."""


def detect_kind(ckpt: Dict) -> Tuple[str, Dict]:
    """Which released format ``ckpt`` is -> (kind name, the weights dict).

    Raises:
        AlreadyConvertedError: ``ckpt`` is this package's own checkpoint (written by this
            converter, ``meta.source_format``, or by ``tools/train.py``: our key layout without the
            fork's frozen ``backbone.pos_embed``, or our ConvNeXt V2 layout with 1-D GRN
            parameters, which mmpretrain's released ConvNeXt V2 checkpoints share, or our
            ViTamin / CLIP layout: ``stem``, ``transition`` and ``blocks.i.ffn.w12`` under
            ``backbone.``, ``visual.`` or no prefix, or ``visual_proj`` with ``text.blocks``);
            it loads as it is.
        ValueError: no known format matches (the message shows the first keys), or ``ckpt`` is
            an official DiT / DiT-LLaMA checkpoint (the message names
            ``tools/model_converters/dit_llama_official.py``, its converter).
    """
    if not isinstance(ckpt, dict):
        raise ValueError(f'a checkpoint must be a dict, got {type(ckpt).__name__}')
    dit = _dit_checkpoint(ckpt)
    if dit:
        raise ValueError(
            f'{dit}: an image-generation denoiser, not a VisionLLaMA, ConvNeXt V2 or ViTamin '
            'backbone; convert it with tools/model_converters/dit_llama_official.py')
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
        if isinstance(weights, dict) and _own_vitamin_key(weights):
            raise AlreadyConvertedError(
                'already a visionllama_mm checkpoint, no conversion needed: its '
                f"{'state_dict' if field else 'top-level dict'} has this package's ViTamin / CLIP "
                f'key layout ({_own_vitamin_key(weights)}) and none of the released formats\' '
                "keys (timm's patch_embed.backbone.*, OpenCLIP's visual.trunk.*); load it directly")
        if isinstance(weights, dict) and _own_convnext_key(weights):
            key = _own_convnext_key(weights)
            raise AlreadyConvertedError(
                'already a visionllama_mm checkpoint, no conversion needed: its '
                f"{'state_dict' if field else 'top-level dict'} has this package's "
                f"(= mmpretrain's) ConvNeXt V2 key layout ({key} of shape "
                f"{tuple(weights[key].shape)}), as mmpretrain's released ConvNeXt V2 checkpoints "
                'do; load it directly')
    top = sorted(ckpt)[:8]
    inner = next((ckpt[k] for k in ('model', 'state_dict') if isinstance(ckpt.get(k), dict)), ckpt)
    sample = sorted(inner)[:8]
    raise ValueError(
        f'unrecognised checkpoint: none of the known release formats ({_known_formats()}) '
        f'matches. Top-level keys: {top}; first weight keys: {sample}')


def convert_state_dict(ckpt: Dict) -> Tuple[str, Dict]:
    """(kind, converted state dict) of a loaded released checkpoint."""
    kind, weights = detect_kind(ckpt)
    convert = next(k[3] for k in KINDS if k[0] == kind)
    return kind, convert(weights)


def convert_file(src: str, dst: str, family: Optional[str] = None) -> str:
    """Convert ``src`` into ``dst`` (``{'state_dict', 'meta'}``, tensors only) -> the kind.

    ``family`` (a key of :data:`FAMILIES`) refuses, with a ``ValueError`` and before anything is
    written, a checkpoint that is recognised but belongs to another family.
    """
    ckpt = load_source(src)
    if family is not None:
        kind, _ = detect_kind(ckpt)
        if kind not in FAMILIES[family]:
            other = next(f for f, kinds in FAMILIES.items() if kind in kinds)
            raise ValueError(
                f'a {other} checkpoint (format {kind}), not a {family} one; this tool converts '
                f'{", ".join(FAMILIES[family])} only')
    kind, state_dict = convert_state_dict(ckpt)
    torch.save({'state_dict': state_dict,
                'meta': {'converted_from': osp.basename(osp.normpath(src)),
                         'source_format': kind}}, dst)
    return kind


def source_path(text: str) -> str:
    """``argparse`` type of a converter's SRC: an existing checkpoint file, or a folder (a hub
    snapshot: its ``model.safetensors``, ``*.index.json``, ``pytorch_model.bin``, ...)."""
    from .cli import existing_file
    return text if osp.isdir(text) else existing_file(text)


def check_not_source(parser, src: str, dst: str) -> None:
    """Refuse a converter output path that is its source file (or one of the files a source folder
    or index is read from): the source would be overwritten."""
    if not osp.exists(dst):
        return
    try:
        index, files = checkpoint_files(src)
        sources = ([index] if index else []) + files
    except (FileNotFoundError, ValueError):  # left to the conversion, which names the fault
        sources = []
    if any(osp.samefile(path, dst) for path in [src] + sources if osp.exists(path)):
        parser.error(f'argument dst: {dst!r} is the source checkpoint itself; converting would '
                     'overwrite it. Give another output path')


def run_cli(family: str, description: str, argv=None) -> None:
    """``tools/model_converters/*_official.py SRC DST`` for one family: convert, print the
    detected format and the output path, or exit with ``error: SRC: ...``."""
    import sys
    from .cli import output_file
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', type=source_path,
                        help='released checkpoint: .pth / .bin / .safetensors file, a shard '
                        '*.index.json, or a folder holding one')
    parser.add_argument('dst', type=output_file, help='where to write the converted checkpoint '
                        '(missing folders are created)')
    args = parser.parse_args(argv)
    check_not_source(parser, args.src, args.dst)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    try:
        kind = convert_file(args.src, args.dst, family=family)
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as err:
        sys.exit(f'error: {args.src}: {err}')
    print(f'detected: {kind}\nwrote: {args.dst}')
