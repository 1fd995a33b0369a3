"""The released LVM checkpoints in, and the LLaMA decoder out as transformers' ``LlamaForCausalLM``.

Read (``tools/model_converters/lvm_official.py SRC DST``; SRC is a folder, its format detected
from its ``config.json`` by :func:`read_source` + :func:`detect`):

* ``transformers-llama``: the LLaMA decoder in transformers' format (``Emma02/LVM_ckpts``): a
  folder with ``config.json`` and ``model.safetensors`` / ``pytorch_model.bin``, possibly sharded
  with an ``*.index.json``. Its parameter names are already ours (:class:`LLaMADecoder` keeps
  ``LlamaForCausalLM``'s), so conversion is a check: the config must describe a decoder we build
  (multi-head attention, untied head, no biases, linear RoPE), every key must match, and the
  result is prefixed with ``backbone.`` for :class:`LVM`.
* ``muse-vqgan``: the MUSE VQGAN (``Emma02/vqvae_ckpts``): ``config.json`` + ``pytorch_model.bin``,
  checked by :func:`~visionllama_mm.models.lvm.vqgan.load_muse_vqgan`.

Write (``... SRC DST --to transformers``): an LVM checkpoint (``backbone.*``, as
``tools/train.py`` saves it or as this converter writes it) -> a folder DST with ``config.json``
and ``model.safetensors`` that ``LlamaForCausalLM.from_pretrained(DST)`` loads. The sizes come from
the shapes; the head count, RoPE base and RMSNorm epsilon from the source's ``meta`` (a converted
file keeps them), else from ``--num-heads`` (or the named size of :attr:`LLaMADecoder.arch_zoo`
with those shapes), ``--rope-theta`` and ``--norm-eps``.

Tensors are read by :func:`visionllama_mm.utils.read_state_dict` (``safetensors``, or
``torch.load(weights_only=True)``); no code runs from the files.
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import torch

from ...converters import source_config
from ...engine.checks import check_keys

__all__ = ['FAMILY', 'FORMATS', 'EXPORTS', 'read_source', 'detect', 'to_ours', 'from_ours',
           'meta', 'describe', 'add_arguments', 'check_args', 'write_export', 'read_hf_state_dict',
           'llama_arch_from_hf_config', 'hf_config_from_arch', 'convert_hf_llama', 'check_keys']

FAMILY = 'LVM'
FORMATS = ('transformers-llama', 'muse-vqgan')
EXPORTS = ('transformers',)


def read_hf_state_dict(src: str) -> Dict[str, torch.Tensor]:
    """All tensors of a transformers checkpoint directory (one file or index-sharded), of its
    ``*.index.json``, or of a single ``.safetensors`` / ``.bin`` file."""
    from ...utils.checkpoint_io import read_state_dict
    if not osp.exists(src):
        raise FileNotFoundError(f'{src}: no such checkpoint file or directory.')
    obj = read_state_dict(src)
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f'{src}: expected a flat state dict of tensors.')
    return obj


def llama_arch_from_hf_config(config: Dict) -> Tuple[dict, Dict]:
    """``LlamaConfig`` fields -> (``LLaMADecoder`` arch dict, other kwargs); refuses what the
    decoder does not implement instead of loading it wrongly."""
    if config.get('model_type', 'llama') != 'llama':
        raise ValueError(f'config.json: model_type {config.get("model_type")!r} is not "llama".')
    heads = config['num_attention_heads']
    kv = config.get('num_key_value_heads') or heads
    problems = []
    if kv != heads:
        problems.append(f'grouped-query attention (num_key_value_heads {kv} != heads {heads})')
    if config.get('tie_word_embeddings', False):
        problems.append('tied word embeddings')
    if config.get('attention_bias', False) or config.get('mlp_bias', False):
        problems.append('biases in attention/MLP')
    if config.get('rope_scaling'):
        problems.append(f'rope_scaling {config["rope_scaling"]}')
    if config.get('hidden_act', 'silu') != 'silu':
        problems.append(f'hidden_act {config["hidden_act"]!r}')
    if config.get('head_dim') not in (None, config['hidden_size'] // heads):
        problems.append(f'head_dim {config["head_dim"]} != hidden_size / heads')
    if problems:
        raise ValueError('config.json describes a LLaMA that LLaMADecoder does not build: '
                         + '; '.join(problems) + '.')
    arch = dict(embed_dims=config['hidden_size'],
                feedforward_channels=config['intermediate_size'],
                num_layers=config['num_hidden_layers'], num_heads=heads)
    kwargs = dict(vocab_size=config['vocab_size'], rope_theta=config.get('rope_theta', 10000.),
                  norm_eps=config.get('rms_norm_eps', 1e-6))
    return arch, kwargs


def hf_config_from_arch(arch: dict, vocab_size: int, rope_theta: float = 10000.,
                        norm_eps: float = 1e-6, dtype: torch.dtype = torch.float32,
                        max_positions: int = 4096) -> Dict:
    """The ``config.json`` of a ``LlamaForCausalLM`` that is the ``LLaMADecoder`` of ``arch``
    (the inverse of :func:`llama_arch_from_hf_config`)."""
    return dict(architectures=['LlamaForCausalLM'], model_type='llama',
                hidden_size=arch['embed_dims'], intermediate_size=arch['feedforward_channels'],
                num_hidden_layers=arch['num_layers'], num_attention_heads=arch['num_heads'],
                num_key_value_heads=arch['num_heads'], vocab_size=vocab_size,
                rope_theta=float(rope_theta), rms_norm_eps=float(norm_eps), hidden_act='silu',
                tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                rope_scaling=None, max_position_embeddings=max_positions,
                torch_dtype=str(dtype).replace('torch.', ''))


def _decoder_shapes(arch: dict, **kwargs) -> Dict[str, torch.Size]:
    from ..backbones.llama import LLaMADecoder
    with torch.device('meta'):
        model = LLaMADecoder(arch=arch, **kwargs)
    return {k: v.shape for k, v in model.state_dict().items()}


def _llama_to_ours(sd: Dict[str, torch.Tensor], config: Dict, where: str):
    arch, kwargs = llama_arch_from_hf_config(config)
    sd = {k: v for k, v in sd.items() if not k.endswith('rotary_emb.inv_freq')}
    check_keys(sd, _decoder_shapes(arch, **kwargs), where)
    return {f'backbone.{k}': v for k, v in sd.items()}, arch, kwargs


def _read_config(src: str) -> Dict:
    cfg_path = osp.join(src, 'config.json') if osp.isdir(src) else None
    if cfg_path is None or not osp.isfile(cfg_path):
        raise FileNotFoundError(f'{src}: expected a transformers checkpoint directory with a '
                                'config.json.')
    with open(cfg_path) as f:
        return json.load(f)


def convert_hf_llama(src: str) -> Tuple[Dict[str, torch.Tensor], dict, Dict]:
    """A transformers LLaMA directory -> (``LVM`` state dict with ``backbone.`` keys, arch dict,
    decoder kwargs). Non-persistent RoPE buffers of old exports (``rotary_emb.inv_freq``) are
    dropped; every other key must match :class:`LLaMADecoder` exactly."""
    config = _read_config(src)
    llama_arch_from_hf_config(config)  # an unsupported variant is refused before reading
    return _llama_to_ours(read_hf_state_dict(src), config, src)


# ------------------------------------------------------------------------- family interface
def read_source(src: str) -> Dict:
    """A released folder -> ``{'config': its config.json, 'source': src}``; the tensors are
    read by :func:`to_ours` (the MUSE VQGAN reader checks them against the config as it reads).

    Raises:
        ValueError: ``src`` has no ``config.json``.
    """
    cfg_path = osp.join(src, 'config.json')
    if not osp.isfile(cfg_path):
        raise ValueError('expected a checkpoint directory with a config.json.')
    with open(cfg_path) as f:
        return {'config': json.load(f), 'source': src}


def detect(ckpt: Dict) -> Optional[Tuple[str, Dict]]:
    """``('transformers-llama' | 'muse-vqgan', ckpt)`` for what :func:`read_source` gives, from
    the config: ``model_type`` "llama" (or ``LlamaForCausalLM`` among its ``architectures``), or
    the MUSE VQGAN fields ``num_embeddings``, ``channel_mult``, ``z_channels``.

    Raises:
        ValueError: a folder's config.json that is neither.
    """
    config = ckpt.get('config') if isinstance(ckpt, dict) else None
    if not isinstance(config, dict) or 'source' not in ckpt:
        return None
    if config.get('model_type') == 'llama' or 'LlamaForCausalLM' in config.get('architectures', []):
        return 'transformers-llama', ckpt
    if {'num_embeddings', 'channel_mult', 'z_channels'} <= set(config):
        return 'muse-vqgan', ckpt
    raise ValueError(f'{osp.join(ckpt["source"], "config.json")}: neither a LLaMA (model_type '
                     '"llama") nor a MUSE VQGAN config (num_embeddings, channel_mult, z_channels).')


def to_ours(weights: Dict, fmt: str, **options) -> Dict:
    """The folder :func:`detect` recognised -> ``LVM`` keys (``backbone.*``) for the decoder,
    ``VQGANTokenizer`` keys for the tokenizer; every key is checked against the model the
    config describes (one error lists the missing, unexpected and mis-shaped ones)."""
    src, config = weights['source'], weights['config']
    if fmt == 'transformers-llama':
        llama_arch_from_hf_config(config)
        return _llama_to_ours(read_hf_state_dict(src), config, src)[0]
    if fmt == 'muse-vqgan':
        from .vqgan import load_muse_vqgan
        return load_muse_vqgan(src)
    raise ValueError(f'LVM: unknown format {fmt!r}; formats: {", ".join(FORMATS)}')


def meta(weights: Dict, fmt: str, args) -> dict:
    """``format``, and ``arch`` + the decoder kwargs (LLaMA) or the ``config`` (VQGAN)."""
    if fmt == 'transformers-llama':
        arch, kwargs = llama_arch_from_hf_config(weights['config'])
        return dict(format=fmt, arch=arch, **kwargs)
    return dict(format=fmt, config=weights['config'])


def describe(meta_: dict) -> List[str]:
    """The line printed after a conversion."""
    if meta_['format'] != 'transformers-llama':
        return ['format: MUSE VQGAN -> VQGANTokenizer']
    from ..backbones.llama import LLaMADecoder
    arch = meta_['arch']
    kwargs = {k: meta_[k] for k in ('vocab_size', 'rope_theta', 'norm_eps')}
    names = [n for n, a in LLaMADecoder.arch_zoo.items() if a == arch]
    return [f'format: transformers LlamaForCausalLM -> LVM (backbone.*); arch {arch}'
            + (f' = {names[-1]!r}' if names else ' (custom)') + f', {kwargs}']


# ------------------------------------------------------------------------------------- export
def _decoder_arch(sd: Dict[str, torch.Tensor], num_heads: Optional[int]) -> dict:
    """``LLaMADecoder`` arch from the shapes; the heads from ``num_heads`` or the named size."""
    from ..backbones.llama import LLaMADecoder
    if 'model.embed_tokens.weight' not in sd or 'model.layers.0.mlp.up_proj.weight' not in sd:
        raise ValueError('not an LVM decoder: no backbone.model.embed_tokens.weight / '
                         'backbone.model.layers.0.mlp.up_proj.weight; first keys: '
                         f'{sorted(sd)[:6]}')
    embed = sd['model.embed_tokens.weight'].shape[1]
    hidden = sd['model.layers.0.mlp.up_proj.weight'].shape[0]
    layers = 1 + max(int(k.split('.')[2]) for k in sd if k.startswith('model.layers.'))
    shapes = dict(embed_dims=embed, feedforward_channels=hidden, num_layers=layers)
    if num_heads is None:
        named = {a['num_heads'] for a in LLaMADecoder.arch_zoo.values()
                 if all(a[k] == v for k, v in shapes.items())}
        if len(named) != 1:
            raise ValueError(f'the head count is not in the shapes ({shapes} is none of '
                             "LLaMADecoder's named sizes): give it with --num-heads")
        num_heads = named.pop()
    return dict(shapes, num_heads=num_heads)


def _source_settings(meta: Optional[dict]) -> dict:
    """``num_heads``, ``rope_theta``, ``norm_eps`` a checkpoint's ``meta`` records: a converted
    file's (``arch`` and the decoder kwargs), or the ``model.backbone`` of a ``tools/train.py``
    checkpoint's config (``meta['cfg']``)."""
    from ..backbones.llama import LLaMADecoder
    if isinstance(meta, dict) and isinstance(meta.get('arch'), dict):
        return dict(num_heads=meta['arch'].get('num_heads'), rope_theta=meta.get('rope_theta'),
                    norm_eps=meta.get('norm_eps'))
    cfg = source_config(meta)
    backbone = cfg.get('model', {}).get('backbone', {}) if cfg is not None else {}
    if backbone.get('type') not in ('LLaMADecoder', 'mmpretrain.LLaMADecoder'):
        return {}
    arch = backbone.get('arch', 'debug')
    arch = LLaMADecoder.arch_zoo.get(arch, {}) if isinstance(arch, str) else arch
    return dict(num_heads=arch.get('num_heads'), rope_theta=backbone.get('rope_theta', 10000.),
                norm_eps=backbone.get('norm_eps', 1e-6))


def from_ours(state_dict: Dict, to: str, num_heads: Optional[int] = None,
              meta: Optional[dict] = None, **options) -> Dict:
    """An LVM state dict (``backbone.*``; ``tokenizer.*`` left out) -> ``LlamaForCausalLM``'s,
    checked key by key against the decoder its shapes describe. The names are the same."""
    if to != 'transformers':
        raise ValueError(f'LVM: cannot export to {to!r}; targets: {", ".join(EXPORTS)}')
    sd = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
    stray = sorted(k for k in state_dict if not k.startswith(('backbone.', 'tokenizer.')))
    if stray or not sd:
        raise ValueError('--to transformers takes an LVM checkpoint (its decoder under '
                         f"backbone.*); {'other keys: ' + str(stray[:6]) if stray else 'none'}")
    if 'lm_head.weight' not in sd:
        raise ValueError('the decoder has no lm_head (with_head=False): LlamaForCausalLM needs one')
    arch = _decoder_arch(sd, num_heads or _source_settings(meta).get('num_heads'))
    check_keys(sd, _decoder_shapes(arch, vocab_size=sd['model.embed_tokens.weight'].shape[0]),
               'the LVM decoder')
    return sd


def write_export(state_dict: Dict, to: str, dst: str, args) -> str:
    """Write ``state_dict`` (:func:`from_ours`' output) as a transformers folder DST:
    ``config.json`` and ``model.safetensors`` -> DST."""
    from safetensors.torch import save_file
    if osp.isfile(dst):
        raise ValueError(f'{dst} is a file; --to transformers writes a folder (config.json + '
                         'model.safetensors)')
    opts = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    source = _source_settings(opts.get('meta'))
    arch = _decoder_arch(state_dict, opts.get('num_heads') or source.get('num_heads'))
    config = hf_config_from_arch(
        arch, state_dict['model.embed_tokens.weight'].shape[0],
        rope_theta=opts.get('rope_theta') or source.get('rope_theta') or 10000.,
        norm_eps=opts.get('norm_eps') or source.get('norm_eps') or 1e-6,
        dtype=state_dict['model.embed_tokens.weight'].dtype)
    os.makedirs(dst, exist_ok=True)
    with open(osp.join(dst, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2)
    save_file({k: v.contiguous() for k, v in state_dict.items()},
              osp.join(dst, 'model.safetensors'), metadata={'format': 'pt'})
    return dst


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``--to transformers``: ``--num-heads``, ``--rope-theta``, ``--norm-eps``."""
    from ...cli import float_range, positive_int
    parser.add_argument('--num-heads', type=positive_int,
                        help='--to transformers: attention heads, when the source has no meta '
                        "and its sizes are not one of LLaMADecoder's named archs")
    parser.add_argument('--rope-theta', type=float_range(0, low_open=True),
                        help='--to transformers: RoPE base (default: the source meta, else 10000)')
    parser.add_argument('--norm-eps', type=float_range(0, low_open=True),
                        help='--to transformers: RMSNorm epsilon (default: the source meta, '
                        'else 1e-6)')


# SRC is a folder to convert (config.json + weights) but a checkpoint file to export: checked by
# check_args, once --to is known
source_type = str


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """SRC: an existing folder without ``--to``, an existing file with it; with ``--to``, DST is
    the folder to write, so not an existing file."""
    from ...cli import existing_dir, existing_file
    try:
        (existing_file if args.to else existing_dir)(args.src)
    except argparse.ArgumentTypeError as err:
        parser.error(f'argument src: {err}')
    if args.to and osp.isfile(args.dst):
        parser.error(f'argument dst: {args.dst!r} is a file; --to {args.to} writes a folder '
                     '(config.json + model.safetensors)')
