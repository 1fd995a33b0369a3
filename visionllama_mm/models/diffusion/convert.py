"""Official DiT / DiT-LLaMA checkpoints (``dit/models.py``) in and out of :class:`DiTLLaMA`.

Read (``tools/model_converters/dit_llama_official.py SRC DST``): what the official
``dit/train.py`` saves, ``{'model', 'ema', 'opt', 'args'}``, or a bare state dict (a released
sampling checkpoint); ``--key`` picks ``ema`` (the default when present, the weights the official
``sample.py`` uses) or ``model``. Formats: ``official-dit-llama`` (SwiGLU ``mlp.c_fc1`` /
``c_fc2`` / ``c_proj``) and ``official-dit`` (the original DiT's GELU ``mlp.fc1`` / ``fc2``).
The :class:`DiTLLaMA` arguments are read from the shapes (:func:`infer_denoiser`).

Write (``... SRC DST --to official``): this package's DiT-LLaMA / DiT (a
``ClassConditionalDiffusion`` checkpoint, its denoiser under ``denoiser.``, or a bare
``DiTLLaMA`` state dict) -> the official ``DiT`` state dict, which the official ``models.py``
(``DiT_models[...]``, ``load_state_dict(strict=True)``) and ``sample.py`` load.

The names are the official ones except the SwiGLU, which this package fuses: ``mlp.c_fc1`` (the
SiLU gate) and ``mlp.c_fc2`` (the up projection) are ``mlp.w12`` (gate rows first) here and
``mlp.c_proj`` is ``mlp.w3``. DiT-LLaMA keeps DiT's frozen sin-cos ``pos_embed`` but never adds
it: it is dropped on the way in (and reported) and rebuilt on the way out. The original DiT's
``pos_embed`` is our buffer of the same name (timm's ``Mlp`` names ``fc1``/``fc2`` are kept).
"""
import argparse
import re
from typing import Dict, List, Optional, Tuple

import torch

from ...converters import AlreadyConvertedError, source_config, without_module_prefix

__all__ = ['FAMILY', 'FORMATS', 'EXPORTS', 'detect', 'to_ours', 'from_ours', 'add_arguments',
           'meta', 'describe', 'convert_official_dit', 'export_official_dit', 'infer_denoiser',
           'pick_weights', 'dit_checkpoint', 'HEADS_OF_WIDTH']

FAMILY = 'DiT-LLaMA'
FORMATS = ('official-dit-llama', 'official-dit')
EXPORTS = ('official',)

# the paper's widths -> heads (Table 18: S, B, L, XL); the only size the shapes do not fix
HEADS_OF_WIDTH = {384: 6, 768: 12, 1024: 16, 1152: 16}
# timestep embedder and adaLN modulation: no recognition backbone has them
DIT_KEYS = ('t_embedder.mlp.0.weight', 'blocks.0.adaLN_modulation.1.weight')
_SWIGLU = re.compile(r'^(blocks\.\d+\.mlp)\.(c_fc1|c_fc2|c_proj)\.weight$')
_OWN_SWIGLU = re.compile(r'^(blocks\.\d+\.mlp)\.(w12|w3)\.weight$')


# ------------------------------------------------------------------------------ detection
def dit_checkpoint(ckpt: Dict) -> str:
    """A description of ``ckpt`` when it is an official DiT / DiT-LLaMA checkpoint, else ''
    (e.g. "a DiT-LLaMA checkpoint (its 'ema' weights have t_embedder.mlp.0.weight, ...)")."""
    for field in ('ema', 'model', ''):
        weights = ckpt.get(field) if field else ckpt
        if isinstance(weights, dict):
            weights = without_module_prefix(weights)
            if all(k in weights for k in DIT_KEYS):
                name = 'DiT-LLaMA' if 'blocks.0.mlp.c_fc1.weight' in weights else 'DiT'
                where = f'its {field!r} weights have' if field else 'its top-level dict has'
                return f'a {name} checkpoint ({where} {", ".join(DIT_KEYS)})'
    return ''


def detect(ckpt: Dict) -> Optional[Tuple[str, Dict]]:
    """``('official-dit-llama' | 'official-dit', ckpt)`` or None. The whole checkpoint is
    returned as the weights: ``--key`` chooses ``ema`` or ``model`` in :func:`to_ours`, and the
    saved ``args.num_classes`` tells whether the label table has a null class.

    Raises:
        AlreadyConvertedError: ``ckpt`` (or its ``state_dict``) is this package's: a denoiser
            under ``denoiser.`` (a ``ClassConditionalDiffusion`` checkpoint), or a bare
            DiT-LLaMA with the fused SwiGLU ``blocks.0.mlp.w12``.
    """
    for field in ('state_dict', ''):
        weights = ckpt.get(field) if field else ckpt
        if not isinstance(weights, dict):
            continue
        if all('denoiser.' + k in weights for k in DIT_KEYS):
            own = 'denoiser.' + DIT_KEYS[0]  # the official code never prefixes its keys
        elif all(k in weights for k in DIT_KEYS + ('blocks.0.mlp.w12.weight', )):
            own = 'blocks.0.mlp.w12.weight'  # the fused SwiGLU
        else:
            continue
        raise AlreadyConvertedError(
            'already a visionllama_mm checkpoint, no conversion needed: its '
            f"{'state_dict' if field else 'top-level dict'} has this package's DiTLLaMA key "
            f'layout ({own}); load it directly')
    described = dit_checkpoint(ckpt)
    if not described:
        return None
    return ('official-dit-llama' if described.startswith('a DiT-LLaMA') else 'official-dit'), ckpt


def pick_weights(ckpt: Dict, key: str = 'auto') -> Tuple[str, Dict]:
    """-> (which weights: 'ema', 'model' or 'state dict', that state dict) of a loaded
    checkpoint; ``key`` is ``--key`` (auto: ``ema`` when present, else ``model``)."""
    if not isinstance(ckpt, dict):
        raise ValueError(f'a checkpoint must be a dict, got {type(ckpt).__name__}')
    fields = [k for k in ('ema', 'model') if isinstance(ckpt.get(k), dict)]
    if not fields:  # a bare state dict
        if key != 'auto':
            raise ValueError(f"--key {key}: the file is a bare state dict without 'ema' or "
                             "'model'; use --key auto")
        return 'state dict', ckpt
    if key == 'auto':
        key = fields[0]
    if key not in fields:
        raise ValueError(f"--key {key}: the file has no {key!r} weights (it has "
                         f"{sorted(map(str, ckpt))})")
    return key, ckpt[key]


# ------------------------------------------------------------------------------ import
def infer_denoiser(sd: Dict, args=None, num_heads: Optional[int] = None,
                   input_size: Optional[int] = None) -> dict:
    """``DiTLLaMA`` keyword arguments (``type`` included) from an official state dict's shapes;
    ``args`` is the checkpoint's ``argparse.Namespace`` (its ``num_classes`` tells whether the
    label table has a null class). The head count is not in the shapes: the paper's widths give
    it (:data:`HEADS_OF_WIDTH`), other widths need ``num_heads``; the input size comes from the
    frozen ``pos_embed``, else from ``input_size``."""
    def need(key):
        if key not in sd:
            raise ValueError(f'not an official DiT / DiT-LLaMA state dict: no {key!r} (first '
                             f'keys: {sorted(map(str, sd))[:8]})')
        return sd[key]

    proj = need('x_embedder.proj.weight')  # (D, C, p, p)
    D, in_ch, p = proj.shape[0], proj.shape[1], proj.shape[2]
    if proj.dim() != 4 or proj.shape[2] != proj.shape[3]:
        raise ValueError(f'x_embedder.proj.weight: expected (D, C, p, p), got {tuple(proj.shape)}')
    depth = 1 + max((int(m.group(1)) for m in map(re.compile(r'blocks\.(\d+)\.').match, sd) if m),
                    default=-1)
    if depth == 0:
        raise ValueError('no blocks.N.* keys: not an official DiT / DiT-LLaMA state dict')
    if any(k.startswith('blocks.0.mlp.c_') for k in sd):
        block_type = 'llama'
    elif 'blocks.0.mlp.fc1.weight' in sd:
        block_type = 'dit'
    else:
        raise ValueError('blocks.0.mlp has neither c_fc1/c_fc2/c_proj (DiT-LLaMA) nor fc1/fc2 '
                         f'(DiT): {sorted(k for k in sd if k.startswith("blocks.0.mlp."))}')
    out_ch, rem = divmod(need('final_layer.linear.weight').shape[0], p * p)
    if rem or out_ch not in (in_ch, 2 * in_ch):
        raise ValueError(f'final_layer.linear.weight has {sd["final_layer.linear.weight"].shape[0]}'
                         f' rows; expected p*p*C or p*p*2C = {p * p * in_ch} or '
                         f'{2 * p * p * in_ch}')
    rows = need('y_embedder.embedding_table.weight').shape[0]
    num_classes = getattr(args, 'num_classes', None) or rows - 1  # released ones have the null row
    if rows not in (num_classes, num_classes + 1):
        raise ValueError(f'y_embedder.embedding_table has {rows} rows; args.num_classes is '
                         f'{num_classes}, so it should have {num_classes} or {num_classes + 1}')
    if num_heads is None:
        if D not in HEADS_OF_WIDTH:
            raise ValueError(f'width {D} is not one of the paper\'s {sorted(HEADS_OF_WIDTH)}: the '
                             'head count is not in the shapes, give it with --num-heads')
        num_heads = HEADS_OF_WIDTH[D]
    if 'pos_embed' in sd:
        grid = round(sd['pos_embed'].shape[1]**0.5)
        if grid * grid != sd['pos_embed'].shape[1]:
            raise ValueError(f'pos_embed {tuple(sd["pos_embed"].shape)}: not a square token grid')
        if input_size is not None and input_size != grid * p:
            raise ValueError(f'--input-size {input_size} contradicts pos_embed '
                             f'{tuple(sd["pos_embed"].shape)} ({grid}x{grid} patches of {p}: '
                             f'{grid * p})')
        input_size = grid * p
    elif input_size is None:
        raise ValueError('no pos_embed, so the input size is unknown: give it with --input-size')
    return dict(type='DiTLLaMA', arch=dict(embed_dims=D, num_layers=depth, num_heads=num_heads),
                patch_size=p, in_channels=in_ch, input_size=input_size, num_classes=num_classes,
                class_dropout_prob=0.1 if rows == num_classes + 1 else 0.,
                learn_sigma=out_ch == 2 * in_ch, block_type=block_type)


def convert_official_dit(state_dict: Dict[str, torch.Tensor],
                         block_type: str = 'llama') -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """-> (our state dict, notes on what was dropped). Keys are not checked here: load the
    result strictly (or check it with ``engine.checks.check_keys``) to find any that do not fit."""
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


def _import(ckpt: Dict, key='auto', num_heads=None, input_size=None):
    """-> (which weights, denoiser arguments, converted state dict without prefix, notes)."""
    which, sd = pick_weights(ckpt, key)
    sd = without_module_prefix(sd)
    denoiser = infer_denoiser(sd, ckpt.get('args'), num_heads, input_size)
    converted, notes = convert_official_dit(sd, denoiser['block_type'])
    return which, denoiser, converted, notes


def to_ours(weights: Dict, fmt: str, key: str = 'auto', prefix: str = 'denoiser.',
            num_heads: Optional[int] = None, input_size: Optional[int] = None,
            **options) -> Dict:
    """An official checkpoint (``weights`` as :func:`detect` returns it) -> our state dict with
    ``prefix`` on every key (``denoiser.``: the denoiser of ``ClassConditionalDiffusion``). The
    model is built from the inferred arguments and every key and shape is checked (one error
    lists them all) before anything is returned."""
    from .dit_llama import DiTLLaMA
    _, denoiser, converted, _ = _import(weights, key, num_heads, input_size)
    from ...engine.checks import check_keys
    with torch.device('meta'):
        model = DiTLLaMA(**{k: v for k, v in denoiser.items() if k != 'type'})
    check_keys(converted, {k: v.shape for k, v in model.state_dict().items()},
               'the converted weights do not fit DiTLLaMA')
    return {prefix + k: v.contiguous() for k, v in converted.items()}


def meta(weights: Dict, fmt: str, args) -> dict:
    """The output's extra ``meta``: which weights, the key prefix, the ``denoiser`` arguments
    (a generation config's ``model.denoiser``) and notes on what was dropped."""
    opts = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    which, denoiser, _, notes = _import(weights, opts.get('key', 'auto'), opts.get('num_heads'),
                                        opts.get('input_size'))
    return dict(weights=which, prefix=opts.get('prefix', 'denoiser.'), denoiser=denoiser,
                notes=notes)


def describe(meta_: dict) -> List[str]:
    """The lines printed after a conversion (format, weights, denoiser arguments, notes)."""
    lines = [f'format: {meta_["source_format"]}, weights: {meta_["weights"]}, keys under '
             f'{meta_["prefix"]!r}',
             'denoiser: ' + ', '.join(f'{k}={v!r}' for k, v in meta_['denoiser'].items())]
    return lines + [f'note: {note}' for note in meta_['notes']]


# ------------------------------------------------------------------------------ export
def sincos_pos_embed(embed_dims: int, grid: int) -> torch.Tensor:
    """(1, grid*grid, D) fixed 2-D sin-cos table of the official ``get_2d_sincos_pos_embed``
    (first half: a token's column, second half: its row, each [sin, cos])."""
    from mmpretrain.models.utils import build_2d_sincos_position_embedding
    table = build_2d_sincos_position_embedding((grid, grid), embed_dims, cls_token=False)
    return torch.cat(table.chunk(2, dim=-1)[::-1], dim=-1)  # mmpretrain puts the rows first


def export_official_dit(sd: Dict[str, torch.Tensor],
                        input_size: Optional[int] = None) -> Dict[str, torch.Tensor]:
    """Our :class:`DiTLLaMA` state dict (no prefix) -> the official ``DiT`` state dict, the
    inverse of :func:`convert_official_dit`: ``mlp.w12`` split into ``c_fc1`` (the gate half)
    and ``c_fc2``, ``mlp.w3`` -> ``c_proj``, and for DiT-LLaMA the frozen ``pos_embed`` the
    official model carries (unused there), rebuilt for ``input_size``."""
    out: Dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        m = _OWN_SWIGLU.match(key)
        if m and m.group(2) == 'w12':
            gate, up = value.chunk(2, dim=0)
            out[f'{m.group(1)}.c_fc1.weight'] = gate.contiguous()
            out[f'{m.group(1)}.c_fc2.weight'] = up.contiguous()
        elif m:
            out[f'{m.group(1)}.c_proj.weight'] = value
        else:
            out[key] = value
    if 'pos_embed' not in out:  # DiT-LLaMA
        proj = out.get('x_embedder.proj.weight')
        if proj is None:
            raise KeyError('export_official_dit: no x_embedder.proj.weight: not a DiTLLaMA state '
                           'dict')
        if input_size is None:
            raise ValueError('the input size is not in a DiT-LLaMA checkpoint (it has no '
                             'pos_embed) but the official model stores its frozen pos_embed: '
                             'give it with --input-size (the latent side, e.g. 32 for 256 px)')
        p = proj.shape[-1]
        if input_size % p:
            raise ValueError(f'--input-size {input_size} is not a multiple of the patch size {p}')
        out['pos_embed'] = sincos_pos_embed(proj.shape[0], input_size // p)
    return out


def _denoiser_weights(state_dict: Dict, prefix: str) -> Dict:
    if prefix and any(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if all(k in state_dict for k in ('x_embedder.proj.weight', 't_embedder.mlp.0.weight')):
        return dict(state_dict)  # a bare DiTLLaMA state dict
    raise ValueError(f'no denoiser weights: no key starts with {prefix!r} and the top level is not '
                     'a DiTLLaMA state dict (x_embedder.proj.weight, t_embedder.mlp.0.weight); '
                     f'first keys: {sorted(map(str, state_dict))[:6]}')


def _input_size(meta: Optional[dict]) -> Optional[int]:
    """The latent side a checkpoint's ``meta`` records: a converted file's ``denoiser``
    arguments, or the ``model.denoiser`` of a ``tools/train.py`` checkpoint's config."""
    if isinstance(meta, dict) and isinstance(meta.get('denoiser'), dict):
        return meta['denoiser'].get('input_size')
    cfg = source_config(meta)
    denoiser = cfg.get('model', {}).get('denoiser', {}) if cfg is not None else {}
    return denoiser.get('input_size', 32 if denoiser.get('type') == 'DiTLLaMA' else None)


def from_ours(state_dict: Dict, to: str, prefix: str = 'denoiser.',
              input_size: Optional[int] = None, meta: Optional[dict] = None,
              **options) -> Dict:
    """This package's checkpoint (its denoiser under ``prefix``, or a bare ``DiTLLaMA`` state
    dict) -> the official ``dit/models.py`` state dict (``to='official'``). DiT-LLaMA needs the
    latent side for the official model's frozen ``pos_embed``: ``input_size``, else what the
    source's ``meta`` records (see :func:`_input_size`)."""
    if to != 'official':
        raise ValueError(f'DiT-LLaMA: cannot export to {to!r}; targets: {", ".join(EXPORTS)}')
    return export_official_dit(_denoiser_weights(state_dict, prefix),
                               input_size or _input_size(meta))


# ------------------------------------------------------------------------------ CLI options
def key_prefix(text: str) -> str:
    """``--prefix``: empty, or a module path ending with a dot (``denoiser.``)."""
    if text and not text.endswith('.'):
        raise argparse.ArgumentTypeError(
            f'{text!r} would be glued to the key names ({text}blocks.0...); a prefix is empty or '
            f'ends with a dot, e.g. {text + "."!r}')
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--key``, ``--prefix``, ``--num-heads``, ``--input-size``."""
    from ...cli import positive_int
    parser.add_argument('--key', choices=['auto', 'ema', 'model'], default='auto',
                        help="weights to convert; auto: 'ema' when present, else 'model'")
    parser.add_argument('--prefix', type=key_prefix, default='denoiser.',
                        help="prefix of the written keys (default 'denoiser.', the "
                        "ClassConditionalDiffusion denoiser; '' for a bare DiTLLaMA); with --to, "
                        'the prefix of the denoiser keys read')
    parser.add_argument('--num-heads', type=positive_int,
                        help=f'attention heads; needed for widths other than '
                        f'{sorted(HEADS_OF_WIDTH)}')
    parser.add_argument('--input-size', type=positive_int,
                        help='latent side; needed when the checkpoint has no pos_embed (and by '
                        '--to official for DiT-LLaMA)')
