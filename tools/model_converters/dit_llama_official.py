"""Convert an official DiT-LLaMA / DiT checkpoint for this package's generation configs, and back.

    python tools/model_converters/dit_llama_official.py SRC DST [--key auto|ema|model]
        [--prefix denoiser.] [--num-heads N] [--input-size N]
    python tools/model_converters/dit_llama_official.py OURS DST --to official [--prefix denoiser.]
        [--input-size N]

SRC is what the official ``dit/train.py`` saves, ``{'model', 'ema', 'opt', 'args'}`` (``args`` an
``argparse.Namespace``), or a bare state dict (a released sampling checkpoint), as a torch file
(``.pt``, ``.pth``, ``.bin``), a ``.safetensors`` file, a shard ``*.index.json`` or a folder
holding one (:func:`visionllama_mm.utils.read_state_dict`). A torch file is read with
``torch.load(weights_only=True)``; the only non-tensor object allowed is ``argparse.Namespace``
(``weights_only`` refuses it otherwise), so a file holding code is refused. ``--key auto`` (the
default) takes ``ema``, the weights the official ``sample.py`` uses, when present, else ``model``.

The block type is read from the keys (``mlp.c_fc1``/``c_fc2``/``c_proj``: DiT-LLaMA's SwiGLU;
``mlp.fc1``/``fc2``: DiT's GELU MLP), and the rest of the :class:`DiTLLaMA` arguments from the
shapes: width, depth, patch size, in/out channels (``learn_sigma``), classes (plus the null class;
``args.num_classes`` when the file has it) and the input size (from the frozen ``pos_embed``, else
``--input-size``). The head count is not in the shapes: the paper's widths give it (384: 6, 768:
12, 1024: 16, 1152: 16); other widths need ``--num-heads``. The inferred arguments are printed, the
model is built with them and every key and shape is checked before anything is written; all
missing, unexpected and mis-shaped keys are listed in one error.

DST is ``{'state_dict', 'meta'}`` with tensors and plain data only. The keys carry ``--prefix``
(default ``denoiser.``, the denoiser of ``ClassConditionalDiffusion``), so ``load_from=DST`` works
with a generation config of that size (``meta['denoiser']`` is its ``denoiser`` dict); a bare
``DiTLLaMA`` loads it with ``init_cfg=dict(type='Pretrained', checkpoint=DST,
prefix='denoiser.')``. ``--prefix ''`` writes the denoiser's own keys.

``--to official`` goes the other way: this package's checkpoint (a ``tools/train.py`` output of a
generation config, its denoiser under ``--prefix``, or a converted file) -> the official
``dit/models.py`` state dict (``mlp.w12`` split back into ``c_fc1`` / ``c_fc2``, ``w3`` ->
``c_proj``, and DiT-LLaMA's frozen sin-cos ``pos_embed`` rebuilt), which the official ``DiT(...)``
of the same size loads with ``load_state_dict(strict=True)`` (and ``sample.py --ckpt``). DST is a
``.safetensors`` file unless it ends with ``.pt`` / ``.pth``. The latent size (for the
``pos_embed``) comes from ``--input-size``, else from the source's ``meta`` (a converted file's
``denoiser``, or the config a ``tools/train.py`` checkpoint keeps).
"""
from visionllama_mm.converters import parse_args as _parse_args
from visionllama_mm.converters import run_cli
from visionllama_mm.models.diffusion import convert as dit_convert

DESCRIPTION = __doc__.split('\n')[0]


def parse_args(argv=None):
    return _parse_args(dit_convert, DESCRIPTION, argv)


def main(argv=None):
    run_cli(dit_convert, DESCRIPTION, argv)


if __name__ == '__main__':
    main()
