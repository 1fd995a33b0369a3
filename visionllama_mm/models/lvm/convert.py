"""Read the released LVM checkpoints into this package's layout.

* The LLaMA decoder is released in transformers' format (``Emma02/LVM_ckpts``): a directory with
  ``config.json`` and ``model.safetensors`` / ``pytorch_model.bin``, possibly sharded with an
  ``*.index.json``. Its parameter names are already ours (:class:`LLaMADecoder` keeps
  ``LlamaForCausalLM``'s), so conversion is a check: the config must describe a decoder we build
  (multi-head attention, untied head, no biases, linear RoPE), every key must match, and the
  result is prefixed with ``backbone.`` for :class:`LVM`.
* The MUSE VQGAN (``Emma02/vqvae_ckpts``): ``config.json`` + ``pytorch_model.bin``, read by
  :func:`~visionllama_mm.models.lvm.vqgan.load_muse_vqgan`.

Tensors are read by :func:`visionllama_mm.utils.read_state_dict` (``safetensors``, or
``torch.load(weights_only=True)``); no code runs from the files.
"""
import json
import os.path as osp
from typing import Dict, Tuple

import torch

__all__ = ['read_hf_state_dict', 'llama_arch_from_hf_config', 'convert_hf_llama', 'check_keys']


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


def check_keys(state_dict: Dict[str, torch.Tensor], expected: Dict[str, torch.Size],
               where: str) -> None:
    """One ``ValueError`` naming every missing, unexpected and mis-shaped key."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = sorted(f'{k}: {tuple(state_dict[k].shape)} != {tuple(expected[k])}'
                    for k in set(expected) & set(state_dict)
                    if tuple(state_dict[k].shape) != tuple(expected[k]))
    if missing or unexpected or shapes:
        parts = [f'{name} ({len(keys)}): {keys[:10]}{" ..." if len(keys) > 10 else ""}'
                 for name, keys in (('missing', missing), ('unexpected', unexpected),
                                    ('shape mismatch', shapes)) if keys]
        raise ValueError(f'{where}: the keys do not match the model: ' + '; '.join(parts))


def convert_hf_llama(src: str) -> Tuple[Dict[str, torch.Tensor], dict, Dict]:
    """A transformers LLaMA directory -> (``LVM`` state dict with ``backbone.`` keys, arch dict,
    decoder kwargs). Non-persistent RoPE buffers of old exports (``rotary_emb.inv_freq``) are
    dropped; every other key must match :class:`LLaMADecoder` exactly."""
    from ..backbones.llama import LLaMADecoder
    cfg_path = osp.join(src, 'config.json') if osp.isdir(src) else None
    if cfg_path is None or not osp.isfile(cfg_path):
        raise FileNotFoundError(f'{src}: expected a transformers checkpoint directory with a '
                                'config.json.')
    with open(cfg_path) as f:
        config = json.load(f)
    arch, kwargs = llama_arch_from_hf_config(config)
    sd = {k: v for k, v in read_hf_state_dict(src).items()
          if not k.endswith('rotary_emb.inv_freq')}
    with torch.device('meta'):
        model = LLaMADecoder(arch=arch, **kwargs)
    check_keys(sd, {k: v.shape for k, v in model.state_dict().items()}, src)
    return {f'backbone.{k}': v for k, v in sd.items()}, arch, kwargs
