"""The shared runner of ``tools/model_converters/``: released checkpoints in, this package's out,
and back (``--to``).

Each model family keeps its conversion in one module beside its model (a *family module*, listed
in :data:`FAMILY_MODULES`), with the same module-level interface:

* ``FAMILY``: its name in messages (``'ConvNeXt V2'``);
* ``FORMATS``: the release formats it reads (``'timm-convnextv2'``, ...);
* ``EXPORTS``: the ``--to`` targets it writes (may be empty);
* ``detect(ckpt)``: ``(format, weights)`` when the loaded file ``ckpt`` is one of ``FORMATS``
  (``weights``: the state dict inside it), else ``None``; raises :class:`AlreadyConvertedError`
  when ``ckpt`` is already in this package's layout;
* ``to_ours(weights, fmt)``: the weights of release format ``fmt`` -> this package's state dict
  (the keys ``load_from`` / ``init_cfg=dict(type='Pretrained')`` load);
* ``from_ours(state_dict, to)``: this package's state dict -> the state dict of target ``to``.

and, where it needs them:

* ``add_arguments(parser)``: options of its CLI, handed as keyword arguments to ``detect`` /
  ``to_ours`` / ``from_ours`` where those name them (or take ``**options``); ``from_ours`` also
  gets ``meta``, the source checkpoint's ``meta`` (or ``None``);
* ``read_source(src) -> dict``: reads SRC for a conversion instead of :func:`load_source`;
* ``meta(weights, fmt, args) -> dict``: entries added to the output's ``meta`` (``args``: an
  ``argparse.Namespace`` of ``src``, ``dst`` and the options);
* ``describe(meta) -> List[str]``: lines the CLI prints after the detected format;
* ``write_export(state_dict, to, dst, args)``: writes a target that is not one plain file of
  tensors (a folder, a wrapped dict); returns the path written (``None``: ``dst``);
* ``source_type`` (the argparse type of SRC) and ``check_args(parser, args)`` (checks over
  several arguments, e.g. SRC a folder to convert but a file to export): see :func:`parse_args`.

:func:`run_cli` is the whole command line of a family's converter::

    python tools/model_converters/<family>_official.py SRC DST            # release -> ours
    python tools/model_converters/<family>_official.py SRC DST --to T     # ours -> target T

SRC is read by :func:`visionllama_mm.utils.read_state_dict`: a torch file (``.pth``, ``.pt``,
``.bin``, ``.ckpt``) with ``torch.load(weights_only=True)``, where the only non-tensor objects
allowed are those the official training scripts store beside the weights (``argparse.Namespace``
in DeiT-style checkpoints, mmengine's logging state in mmpretrain-fork ones); a ``.safetensors``
file; a sharded checkpoint through its ``*.index.json``; or a hub folder holding one of these.

Without ``--to``, DST is ``{'state_dict', 'meta'}`` (``meta``: ``converted_from``,
``source_format``), tensors only, or a ``.safetensors`` file of the same tensors with the ``meta``
entries in its header when DST ends with ``.safetensors``. A checkpoint of another family is
refused naming that family, and one already in this package's layout (``tools/train.py`` outputs,
converted files) with :class:`AlreadyConvertedError`: it loads as it is.

With ``--to T``, SRC is this package's checkpoint (``tools/train.py`` output or a converted file:
its ``'state_dict'``, or a bare state dict) and DST the target's file: ``.safetensors`` when DST
ends with it, a torch file when it ends with ``.pth`` / ``.pt`` / ``.bin`` / ``.ckpt``, and
DST + ``.safetensors`` (the default) when it has no extension.
"""
import argparse
import importlib
import inspect
import json
import os
import os.path as osp
import sys
from types import ModuleType
from typing import Dict, List, Optional, Tuple, Union

import torch

from .utils.checkpoint_io import checkpoint_files, read_state_dict

__all__ = ['FAMILY_MODULES', 'AlreadyConvertedError', 'family_modules', 'family_module',
           'load_source', 'detect_any', 'detect_kind', 'convert_state_dict', 'convert_file',
           'export_file', 'parse_args', 'run_cli', 'source_config', 'without_module_prefix']

#: The family modules, in the order :func:`detect_any` asks them. VisionLLaMA comes first: its
#: ``detect`` names official DiT / DiT-LLaMA checkpoints, whose SwiGLU keys are ``deit-plain``'s.
FAMILY_MODULES = (
    'visionllama_mm.models.backbones.vision_llama_convert',
    'visionllama_mm.models.backbones.convnextv2_convert',
    'visionllama_mm.models.backbones.vitamin_convert',
    'visionllama_mm.models.lvm.convert',
    'visionllama_mm.models.diffusion.convert',
)

_TORCH_SUFFIXES = ('.pth', '.pt', '.bin', '.ckpt')


class AlreadyConvertedError(ValueError):
    """The checkpoint is already in this package's layout: nothing to convert."""


def without_module_prefix(sd: Dict) -> Dict:
    """``sd`` without the ``module.`` prefix a DDP-wrapped model puts on every key."""
    if any(isinstance(k, str) and k.startswith('module.') for k in sd):
        return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}
    return sd


def family_modules() -> List[ModuleType]:
    """The family modules of :data:`FAMILY_MODULES` that define the interface, imported."""
    modules = []
    for path in FAMILY_MODULES:
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError as err:
            if err.name != path:
                raise
            module = None
        if module is not None and hasattr(module, 'detect'):
            modules.append(module)
    return modules


def family_module(family: Union[str, ModuleType]) -> ModuleType:
    """A family module from itself, its import path or its ``FAMILY`` name (``'ViTamin'``)."""
    if not isinstance(family, str):
        return family
    for module in family_modules():
        if family in (module.FAMILY, module.__name__):
            return module
    raise ValueError(f'no converter family {family!r}; known: '
                     f'{", ".join(m.FAMILY for m in family_modules())}')


def _known_formats() -> str:
    return '; '.join(f'{m.FAMILY}: {", ".join(m.FORMATS)}' for m in family_modules())


def _call(fn, *args, options: Optional[Dict] = None):
    """``fn(*args, **the options fn takes)``: family options go to the hooks that name them."""
    if not options:
        return fn(*args)
    params = inspect.signature(fn).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return fn(*args, **options)
    return fn(*args, **{k: v for k, v in options.items() if k in params})


def load_source(path: str) -> Dict:
    """Read a checkpoint: a torch file (``weights_only=True``), a ``.safetensors`` file, a shard
    index or a folder holding one (errors name the file and the fault: missing, not a
    checkpoint, truncated, holding code, shards that disagree with their index)."""
    return read_state_dict(path, map_location='cpu', extra_safe_globals=[argparse.Namespace])


def _refuse_converted(ckpt: Dict) -> None:
    """A file this runner wrote carries ``meta.source_format``: refuse it as already converted."""
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    if 'source_format' in meta:
        raise AlreadyConvertedError(
            f"already a visionllama_mm checkpoint, no conversion needed: converted from "
            f"{meta.get('converted_from', '?')} (format {meta['source_format']}) by this tool; "
            'load it directly (load_from=, or init_cfg=dict(type=\'Pretrained\', checkpoint=...))')


def detect_any(ckpt: Dict, options: Optional[Dict] = None) -> Tuple[ModuleType, str, Dict]:
    """Which family and release format ``ckpt`` is -> (family module, format, weights).

    A release format of any family wins over a family's "already converted" verdict.

    Raises:
        AlreadyConvertedError: ``ckpt`` is this package's own checkpoint (``meta.source_format``
            of a converted file, or a family's own key layout); it loads as it is.
        ValueError: ``ckpt`` is not a dict, a family refuses it (an official DiT checkpoint:
            the message names its converter), or no release format matches (the message lists
            them and shows the first keys).
    """
    if not isinstance(ckpt, dict):
        raise ValueError(f'a checkpoint must be a dict, got {type(ckpt).__name__}')
    _refuse_converted(ckpt)
    converted = None
    for module in family_modules():
        try:
            found = _call(module.detect, ckpt, options=options)
        except AlreadyConvertedError as err:
            converted = converted or err
            continue
        if found:
            return (module, ) + tuple(found)
    if converted is not None:
        raise converted
    top = sorted(map(str, ckpt))[:8]
    inner = next((ckpt[k] for k in ('model', 'state_dict') if isinstance(ckpt.get(k), dict)), ckpt)
    raise ValueError(
        f'unrecognised checkpoint: none of the known release formats ({_known_formats()}) '
        f'matches. Top-level keys: {top}; first weight keys: {sorted(map(str, inner))[:8]}')


def detect_kind(ckpt: Dict) -> Tuple[str, Dict]:
    """(format, weights) of a loaded release checkpoint of any family (see :func:`detect_any`)."""
    return detect_any(ckpt)[1:]


def convert_state_dict(ckpt: Dict) -> Tuple[str, Dict]:
    """(format, this package's state dict) of a loaded release checkpoint of any family."""
    module, fmt, weights = detect_any(ckpt)
    return fmt, module.to_ours(weights, fmt)


def _detect_for(module: ModuleType, ckpt: Dict, options: Optional[Dict]) -> Tuple[str, Dict]:
    """(format, weights) of ``ckpt`` for ``module``'s converter; a checkpoint of another family is
    refused naming it."""
    if not isinstance(ckpt, dict):
        raise ValueError(f'a checkpoint must be a dict, got {type(ckpt).__name__}')
    _refuse_converted(ckpt)
    found = _call(module.detect, ckpt, options=options)
    if found:
        return tuple(found)
    other, fmt, _ = detect_any(ckpt)
    raise ValueError(f'a {other.FAMILY} checkpoint (format {fmt}), not a {module.FAMILY} one; '
                     f'this tool converts {", ".join(module.FORMATS)} only')


def _save_tensors(state_dict: Dict, dst: str, metadata: Optional[Dict[str, str]] = None) -> None:
    """``state_dict`` as a ``.safetensors`` file (views that share memory are copied apart)."""
    from safetensors.torch import save_file
    seen, tensors = set(), {}
    for key, value in state_dict.items():
        value = value.detach().contiguous()
        ptr = value.untyped_storage().data_ptr()
        tensors[key] = value.clone() if ptr in seen and value.numel() else value
        seen.add(ptr)
    save_file(tensors, dst, metadata=metadata)


def _meta_header(meta: Dict) -> Dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def convert_file(src: str, dst: str, module: Union[str, ModuleType], **options) -> str:
    """Convert the release checkpoint ``src`` into ``dst`` -> the detected format.

    ``dst`` is ``{'state_dict', 'meta'}`` (tensors only), or a ``.safetensors`` file of the same
    tensors with ``meta`` in its header when it ends with ``.safetensors``. ``module`` is a family
    module (or its ``FAMILY`` name); ``options`` are its CLI options. A checkpoint of another
    family, or one already in this package's layout, is refused and nothing is written.
    """
    return _convert(src, dst, family_module(module), options)['source_format']


def _convert(src: str, dst: str, module: ModuleType, options: Dict) -> Dict:
    """:func:`convert_file` -> the ``meta`` written."""
    ckpt = module.read_source(src) if hasattr(module, 'read_source') else load_source(src)
    fmt, weights = _detect_for(module, ckpt, options)
    state_dict = _call(module.to_ours, weights, fmt, options=options)
    meta = {'converted_from': osp.basename(osp.normpath(src)), 'source_format': fmt}
    if hasattr(module, 'meta'):
        meta.update(module.meta(weights, fmt, argparse.Namespace(src=src, dst=dst, **options)))
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    if dst.endswith('.safetensors'):
        _save_tensors(state_dict, dst, _meta_header(meta))
    else:
        torch.save({'state_dict': state_dict, 'meta': meta}, dst)
    return meta


def own_state_dict(ckpt: Dict) -> Dict:
    """The weights of this package's checkpoint: its ``'state_dict'`` (``tools/train.py`` outputs,
    converted files), or ``ckpt`` itself (a bare state dict)."""
    weights = ckpt.get('state_dict') if isinstance(ckpt, dict) else None
    return weights if isinstance(weights, dict) else ckpt


def _own_family(ckpt: Dict) -> Optional[ModuleType]:
    """The family whose ``detect`` calls ``ckpt`` this package's layout, or ``None``."""
    for module in family_modules():
        try:
            module.detect(ckpt)
        except AlreadyConvertedError:
            return module
        except ValueError:
            continue
    return None


def export_file(src: str, dst: str, module: Union[str, ModuleType], to: str, **options) -> str:
    """Export this package's checkpoint ``src`` to target ``to`` of ``module`` -> the path written.

    ``dst`` ending in ``.safetensors`` gets a ``.safetensors`` file, in a torch suffix a torch
    file, and with no extension ``dst + '.safetensors'``; a family's ``write_export`` decides for
    its targets instead. A release checkpoint is refused (convert it without ``--to``).
    """
    module = family_module(module)
    if to not in module.EXPORTS:
        exports = ', '.join(module.EXPORTS) or 'none'
        raise ValueError(f'{module.FAMILY} checkpoints export to {exports}, not {to!r}')
    ckpt = load_source(src)
    try:
        other, fmt, _ = detect_any(ckpt)
    except AlreadyConvertedError:
        pass  # this package's layout: what is exported
    except ValueError:
        pass  # no family knows it: from_ours names the keys it cannot place
    else:
        raise ValueError(
            f'a released {other.FAMILY} checkpoint (format {fmt}), not one of this package\'s: '
            '--to exports a tools/train.py checkpoint or a converted file; convert this one '
            'without --to first')
    owner = _own_family({'state_dict': own_state_dict(ckpt)})
    if owner is not None and owner is not module:
        raise ValueError(f'a {owner.FAMILY} checkpoint of this package, not a {module.FAMILY} '
                         f'one; this tool exports {module.FAMILY} checkpoints only')
    src_meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else None
    options = dict(options, meta=src_meta)
    out = _call(module.from_ours, own_state_dict(ckpt), to, options=options)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    if hasattr(module, 'write_export'):
        args = argparse.Namespace(src=src, dst=dst, to=to, **options)
        return module.write_export(out, to, dst, args) or dst
    if not osp.splitext(dst)[1]:
        dst += '.safetensors'
    if dst.endswith('.safetensors'):
        _save_tensors(out, dst)
    elif dst.endswith(_TORCH_SUFFIXES):
        torch.save(out, dst)
    else:
        raise ValueError(f'{dst}: --to {to} writes .safetensors (the default) or a torch file '
                         f'({", ".join(_TORCH_SUFFIXES)}), not {osp.splitext(dst)[1]!r}')
    return dst


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


def source_config(meta: Optional[Dict]):
    """The config a ``tools/train.py`` checkpoint was trained with (mmengine keeps its text in
    ``meta['cfg']``) as an mmengine ``Config``, or None (no such text, or text that does not
    parse: an exporter then needs the options that say what it would have)."""
    text = meta.get('cfg') if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return None
    from mmengine.config import Config
    try:
        return Config.fromstring(text, '.py')
    except Exception:  # any fault of the stored text means: no config to read sizes from
        return None


def parse_args(module: Union[str, ModuleType], description: Optional[str] = None,
               argv=None) -> argparse.Namespace:
    """The command line of ``module``'s converter, checked as :func:`run_cli` checks it (argparse
    errors exit with status 2 and one line). A family may set ``source_type`` (the argparse type
    of SRC, default: an existing file or folder) and ``check_args(parser, args)`` (checks that
    need several arguments, e.g. a SRC folder without ``--to`` and a file with it)."""
    module = family_module(module)
    parser = argparse.ArgumentParser(
        description=description or (module.__doc__ or '').strip().split('\n')[0])
    parser.add_argument('src', type=getattr(module, 'source_type', source_path),
                        help='checkpoint: .pth / .bin / .safetensors file, a shard *.index.json, '
                        'or a folder holding one; with --to, a checkpoint of this package')
    parser.add_argument('dst', help='where to write (missing folders are created)')
    if module.EXPORTS:
        parser.add_argument('--to', choices=module.EXPORTS,
                            help=f'write this package\'s {module.FAMILY} checkpoint SRC in the '
                            'layout of TO (the file written: see this tool\'s docstring)')
    if hasattr(module, 'add_arguments'):
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    if hasattr(module, 'check_args'):
        module.check_args(parser, args)
    # a family's write_export may write a folder: then only the path to it is checked here
    _check_output(parser, args.dst,
                  file=not (getattr(args, 'to', None) and hasattr(module, 'write_export')))
    check_not_source(parser, args.src, args.dst)
    return args


def run_cli(module: Union[str, ModuleType], description: Optional[str] = None,
            argv=None) -> None:
    """``tools/model_converters/<family>_official.py SRC DST [--to T] [family options]``: convert
    (print the detected format, the family's ``describe`` lines and the output path) or export
    (print the target and the path), or exit with ``error: SRC: ...``.

    ``module``: a family module, its import path or its ``FAMILY`` name; ``description``: the
    ``--help`` text (default: the first line of the module's docstring)."""
    module = family_module(module)
    args = parse_args(module, description, argv)
    to = getattr(args, 'to', None)
    options = {k: v for k, v in vars(args).items() if k not in ('src', 'dst', 'to')}
    try:
        if to:
            path = export_file(args.src, args.dst, module, to, **options)
            print(f'exported: {module.FAMILY} -> {to}\nwrote: {path}')
            return
        meta = _convert(args.src, args.dst, module, options)
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as err:
        sys.exit(f'error: {args.src}: {err}')
    print(f'detected: {meta["source_format"]}')
    for line in module.describe(meta) if hasattr(module, 'describe') else ():
        print(line)
    print(f'wrote: {args.dst}')


def _check_output(parser, dst: str, file: bool) -> None:
    """DST: not an existing folder (when a file is written), no file in the way of its folders."""
    from .cli import _writable_parent, output_file
    try:
        output_file(dst) if file else _writable_parent(dst, 'output')
    except argparse.ArgumentTypeError as err:
        parser.error(f'argument dst: {err}')
