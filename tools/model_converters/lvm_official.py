"""Convert the released LVM checkpoints into files this package's LVM configs load.

    python tools/model_converters/lvm_official.py SRC DST

SRC is one of (detected from its config.json, printed):

- ``llama``: the released decoder in transformers' format (``Emma02/LVM_ckpts``; any
  ``LlamaForCausalLM`` directory with multi-head attention): ``config.json`` and
  ``model.safetensors`` / ``pytorch_model.bin``, sharded with an ``*.index.json`` or not (every
  shard is checked against the index's ``weight_map``). The names are already ours, so every key
  is checked against the ``LLaMADecoder`` the config describes (missing, unexpected and
  mis-shaped keys are listed and nothing is written) and written under ``backbone.``: load it
  with ``load_from=DST`` in an LVM config of that size (the printed arch). Unsupported variants
  (grouped-query attention, tied embeddings, RoPE scaling) are refused.
- ``vqgan``: the MUSE VQGAN tokenizer (``Emma02/vqvae_ckpts`` = ``VictorSanh/vqvae_ckpts``):
  ``config.json`` and ``pytorch_model.bin`` (or ``model.safetensors``), checked key by key
  against ``VQGANTokenizer`` built from that config; load it with
  ``model.tokenizer.init_cfg=dict(type='Pretrained', checkpoint=DST)`` (or
  ``--tokenizer-checkpoint`` of the LVM tools).

Tensors are read by :func:`visionllama_mm.utils.read_state_dict` (safetensors, or
``torch.load(weights_only=True)``); a fault (a missing shard, a truncated file) is one line
``error: SRC: ...``. DST is ``{'state_dict', 'meta'}`` with tensors only.
"""
import argparse
import json
import os
import os.path as osp


def parse_args(argv=None):
    from visionllama_mm.cli import existing_dir, output_file
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', type=existing_dir,
                        help='checkpoint directory (config.json + weights)')
    parser.add_argument('dst', type=output_file,
                        help='output file (.pth; missing folders are created)')
    return parser.parse_args(argv)


def detect(src: str) -> str:
    """'llama' or 'vqgan' from the directory's config.json."""
    cfg_path = osp.join(src, 'config.json')
    if not osp.isfile(cfg_path):
        raise SystemExit(f'{src}: expected a checkpoint directory with a config.json.')
    with open(cfg_path) as f:
        config = json.load(f)
    if config.get('model_type') == 'llama' or 'LlamaForCausalLM' in config.get('architectures', []):
        return 'llama'
    if {'num_embeddings', 'channel_mult', 'z_channels'} <= set(config):
        return 'vqgan'
    raise SystemExit(f'{cfg_path}: neither a LLaMA (model_type "llama") nor a MUSE VQGAN config '
                     '(num_embeddings, channel_mult, z_channels).')


def main(argv=None):
    args = parse_args(argv)
    import torch

    import visionllama_mm  # noqa: F401
    kind = detect(args.src)
    if kind == 'llama':
        from visionllama_mm.models.lvm.convert import convert_hf_llama
        try:
            state_dict, arch, kwargs = convert_hf_llama(args.src)
        except (ValueError, RuntimeError, FileNotFoundError) as err:
            raise SystemExit(f'error: {args.src}: {err}')
        meta = dict(format='transformers-llama', arch=arch, **kwargs)
        from visionllama_mm.models.backbones.llama import LLaMADecoder
        names = [n for n, a in LLaMADecoder.arch_zoo.items() if a == arch]
        print(f'format: transformers LlamaForCausalLM -> LVM (backbone.*); arch {arch}'
              + (f' = {names[-1]!r}' if names else ' (custom)') + f', {kwargs}')
    else:
        from visionllama_mm.models.lvm.vqgan import load_muse_vqgan
        with open(osp.join(args.src, 'config.json')) as f:
            config = json.load(f)
        try:
            state_dict = load_muse_vqgan(args.src)
        except (ValueError, RuntimeError) as err:
            raise SystemExit(f'error: {args.src}: {err}')
        meta = dict(format='muse-vqgan', config=config)
        print('format: MUSE VQGAN -> VQGANTokenizer')
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=state_dict, meta=meta), args.dst)
    n = sum(v.numel() for v in state_dict.values())
    print(f'wrote {len(state_dict)} tensors ({n:,} values) to {args.dst}')


if __name__ == '__main__':
    main()
