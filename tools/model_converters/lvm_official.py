"""Convert the released LVM checkpoints for this package's LVM configs; export ours to transformers.

    python tools/model_converters/lvm_official.py SRC DST
    python tools/model_converters/lvm_official.py OURS.pth DST --to transformers [--num-heads N]
        [--rope-theta T] [--norm-eps E]

SRC is one of (detected from its config.json, printed):

- ``transformers-llama``: the released decoder in transformers' format (``Emma02/LVM_ckpts``; any
  ``LlamaForCausalLM`` directory with multi-head attention): ``config.json`` and
  ``model.safetensors`` / ``pytorch_model.bin``, sharded with an ``*.index.json`` or not (every
  shard is checked against the index's ``weight_map``). The names are already ours, so every key
  is checked against the ``LLaMADecoder`` the config describes (missing, unexpected and
  mis-shaped keys are listed and nothing is written) and written under ``backbone.``: load it
  with ``load_from=DST`` in an LVM config of that size (the printed arch). Unsupported variants
  (grouped-query attention, tied embeddings, RoPE scaling) are refused.
- ``muse-vqgan``: the MUSE VQGAN tokenizer (``Emma02/vqvae_ckpts`` = ``VictorSanh/vqvae_ckpts``):
  ``config.json`` and ``pytorch_model.bin`` (or ``model.safetensors``), checked key by key
  against ``VQGANTokenizer`` built from that config; load it with
  ``model.tokenizer.init_cfg=dict(type='Pretrained', checkpoint=DST)`` (or
  ``--tokenizer-checkpoint`` of the LVM tools).

Tensors are read by :func:`visionllama_mm.utils.read_state_dict` (safetensors, or
``torch.load(weights_only=True)``); a fault (a missing shard, a truncated file) is one line
``error: SRC: ...``. DST is ``{'state_dict', 'meta'}`` with tensors only.

``--to transformers`` goes the other way: an LVM checkpoint of this package (a ``tools/train.py``
output or a converted file; its decoder under ``backbone.*``, a tokenizer's keys left out) -> a
folder DST with ``config.json`` and ``model.safetensors`` that
``transformers.LlamaForCausalLM.from_pretrained(DST)`` loads (every key checked first). The sizes
come from the shapes; the head count, RoPE base and RMSNorm epsilon from the options, else the
source's ``meta`` (a converted file's ``arch``, the config a ``tools/train.py`` checkpoint keeps),
else the named size of ``LLaMADecoder.arch_zoo`` with those shapes, 10000 and 1e-6.
"""
from visionllama_mm.converters import parse_args as _parse_args
from visionllama_mm.converters import run_cli
from visionllama_mm.models.lvm import convert as lvm_convert

DESCRIPTION = __doc__.split('\n')[0]


def parse_args(argv=None):
    return _parse_args(lvm_convert, DESCRIPTION, argv)


def main(argv=None):
    run_cli(lvm_convert, DESCRIPTION, argv)


if __name__ == '__main__':
    main()
