"""Convert an official DiT-LLaMA (or original DiT) checkpoint into one this package's generation
configs load.

    python tools/model_converters/dit_llama_official.py SRC DST [--key auto|ema|model]
        [--prefix denoiser.] [--num-heads N] [--input-size N]

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
"""
import argparse
import os
import os.path as osp
import re
import sys

# the paper's widths -> heads (Table 18: S, B, L, XL); the only size the shapes do not fix
HEADS_OF_WIDTH = {384: 6, 768: 12, 1024: 16, 1152: 16}


def key_prefix(text):
    """``--prefix``: empty, or a module path ending with a dot (``denoiser.``)."""
    if text and not text.endswith('.'):
        raise argparse.ArgumentTypeError(
            f'{text!r} would be glued to the key names ({text}blocks.0...); a prefix is empty or '
            f'ends with a dot, e.g. {text + "."!r}')
    return text


def parse_args(argv=None):
    from visionllama_mm.cli import output_file, positive_int
    from visionllama_mm.converters import check_not_source, source_path
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', type=source_path,
                        help="official checkpoint ({'model', 'ema', ...} or a state dict): .pt / "
                        ".pth / .safetensors, a shard *.index.json or a folder holding one")
    parser.add_argument('dst', type=output_file,
                        help='output file (.pth; missing folders are created)')
    parser.add_argument('--key', choices=['auto', 'ema', 'model'], default='auto',
                        help="weights to convert; auto: 'ema' when present, else 'model'")
    parser.add_argument('--prefix', type=key_prefix, default='denoiser.',
                        help="prefix of the written keys (default 'denoiser.', the "
                        "ClassConditionalDiffusion denoiser; '' for a bare DiTLLaMA)")
    parser.add_argument('--num-heads', type=positive_int,
                        help=f'attention heads; needed for widths other than {sorted(HEADS_OF_WIDTH)}')
    parser.add_argument('--input-size', type=positive_int,
                        help='latent side; needed when the checkpoint has no pos_embed')
    args = parser.parse_args(argv)
    check_not_source(parser, args.src, args.dst)
    return args


def pick_weights(ckpt, key: str):
    """-> (which weights, state dict) of a loaded checkpoint."""
    if not isinstance(ckpt, dict):
        raise ValueError(f'a checkpoint must be a dict, got {type(ckpt).__name__}')
    meta = ckpt.get('meta')
    if isinstance(meta, dict) and 'source_format' in meta and 'state_dict' in ckpt:
        raise ValueError(f"already a visionllama_mm checkpoint (converted from "
                         f"{meta.get('converted_from', '?')}, format {meta['source_format']}), no "
                         'conversion needed: load it directly')
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


def infer_denoiser(sd, args=None, num_heads=None, input_size=None) -> dict:
    """``DiTLLaMA`` keyword arguments (``type`` included) from an official state dict's shapes;
    ``args`` is the checkpoint's ``argparse.Namespace`` (its ``num_classes`` tells whether the
    label table has a null class)."""
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
                         f' rows; expected p*p*C or p*p*2C = {p * p * in_ch} or {2 * p * p * in_ch}')
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


def check_keys(model, sd) -> None:
    """Raise one ``ValueError`` listing every missing, unexpected and mis-shaped key of ``sd``
    against ``model.state_dict()``."""
    ours = model.state_dict()
    missing = sorted(set(ours) - set(sd))
    unexpected = sorted(set(sd) - set(ours))
    shapes = sorted(f'{k}: checkpoint {tuple(sd[k].shape)}, model {tuple(ours[k].shape)}'
                    for k in set(sd) & set(ours) if sd[k].shape != ours[k].shape)
    problems = [f'{what} ({len(keys)}): {keys}' for what, keys in
                (('missing', missing), ('unexpected', unexpected), ('mis-shaped', shapes)) if keys]
    if problems:
        raise ValueError('the converted weights do not fit DiTLLaMA: ' + '; '.join(problems))


def convert(src: str, dst: str, key='auto', prefix='denoiser.', num_heads=None,
            input_size=None) -> dict:
    """Convert ``src`` into ``dst``; -> the meta written (and printed by :func:`main`)."""
    import torch

    import visionllama_mm  # noqa: F401  (registries)
    from visionllama_mm.converters import load_source
    from visionllama_mm.models.diffusion import DiTLLaMA, convert_official_dit
    ckpt = load_source(src)
    which, sd = pick_weights(ckpt, key)
    sd = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}
    denoiser = infer_denoiser(sd, ckpt.get('args'), num_heads, input_size)
    converted, notes = convert_official_dit(sd, denoiser['block_type'])
    model = DiTLLaMA(**{k: v for k, v in denoiser.items() if k != 'type'})
    check_keys(model, converted)
    model.load_state_dict(converted, strict=True)
    meta = dict(converted_from=osp.basename(osp.normpath(src)),
                source_format=f'official-{"dit-llama" if denoiser["block_type"] == "llama" else "dit"}',
                weights=which, prefix=prefix, denoiser=denoiser, notes=notes)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(dict(state_dict={prefix + k: v.contiguous() for k, v in converted.items()},
                    meta=meta), dst)
    return meta


def main(argv=None):
    args = parse_args(argv)
    try:
        meta = convert(args.src, args.dst, args.key, args.prefix, args.num_heads, args.input_size)
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as err:
        sys.exit(f'error: {args.src}: {err}')
    d = meta['denoiser']
    print(f'format: {meta["source_format"]}, weights: {meta["weights"]}')
    print('denoiser: ' + ', '.join(f'{k}={v!r}' for k, v in d.items()))
    for note in meta['notes']:
        print(f'note: {note}')
    print(f'wrote: {args.dst} (keys under {meta["prefix"]!r})')


if __name__ == '__main__':
    main()
