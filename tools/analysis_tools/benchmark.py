"""Throughput (images/s) of a config's model in fp32 and bf16, forward and forward+backward, side by
side with reference models in the same run.

    python tools/analysis_tools/benchmark.py CONFIG [--timm vit_small_patch16_224 ...]
        [--reference-file path/to/models.py --reference-model NAME ...]
        [--precisions fp32 bf16] [--batch-size 32] [--shape 224] [--iters 10] [--warmup 3]
        [--repeats 3] [--channels-last] [--device cuda|cpu] [--cfg-options k=v ...]
        [--variant NAME k=v ...] [--memory] [--compile [BACKEND] [--compile-mode MODE]]

References are timm models (``--timm``) or model factories defined in any python file
(``--reference-file`` with one or more ``--reference-model`` function names, each called with
``num_classes``), e.g. an official repository's model file in an environment that has its
dependencies. All models are measured alternately on the same random input after the same warm-up,
the best of ``--repeats`` rounds kept (each measurement is a ``torch.utils.benchmark.Timer``).
The table ends with ours/reference and bf16/fp32 ratios.
``--variant NAME k=v ...`` (repeatable) adds the same config with overrides as a reference, e.g.
FCMAE's masked-dense encoder beside the sparse one:

    python tools/analysis_tools/benchmark.py configs/convnextv2/fcmae_convnextv2-atto_...py \
        --variant masked-dense model.backbone.impl=masked_dense --precisions fp32 --memory

``--memory`` adds each model's peak memory of one forward+backward step. ``--compile`` adds a
``torch.compile``-d twin of every model (ours, references and variants alike; inductor unless a
backend is named, e.g. ``--compile aot_eager``), measured in the
same alternating rounds after the warm-up has compiled it; the table then also gives ours / each
reference compiled against compiled, and compiled / eager for every model.

Causal LMs over visual tokens (an ``LVM`` config) are measured in tokens/s instead: the training
step (forward+backward of the loss) and KV-cache sampling, beside transformers'
``LlamaForCausalLM`` (SDPA) with the same dims and weights (``--no-reference`` to skip it):

    python tools/analysis_tools/benchmark.py configs/lvm/lvm_llama-300m_....py \
        --batch-size 4 --seq-len 512 --gen-prompt 256 --gen-new 256 --iters 3

Class-conditional diffusion configs (``model.denoiser``, e.g. ``ClassConditionalDiffusion`` with a
``DiTLLaMA``) measure the denoiser alone in images/s: forward and forward+backward (loss: the mean
square of the output) on random latents (B, in_channels, S, S) with S the denoiser's
``input_size`` (``--shape`` to change it), timesteps in [0, 1000) and labels. A
``--reference-file`` factory gets the denoiser's sizes under the official ``DiT(...)`` names
(``input_size``, ``patch_size``, ``in_channels``, ``hidden_size``, ``depth``, ``num_heads``,
``num_classes``, ``learn_sigma``; those it names, or the data-side ones for ``**kwargs``
factories such as the official ``DiT_XL_2``); ``--variant`` overrides ``model.denoiser.*``:

    python tools/analysis_tools/benchmark.py configs/dit_llama/dit_llama-b-p4_8xb32-400k_in1k-256px.py \
        --reference-file tools/analysis_tools/dit_official_models.py --reference-model DiT_LLaMA \
        --variant dit model.denoiser.block_type=dit --batch-size 8
"""
import argparse
import inspect
import os.path as osp
import sys
from typing import Optional

import torch
from mmengine.config import Config, DictAction

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _REPO not in sys.path:  # the measuring code is tools/analysis_tools/analysis.py
    sys.path.insert(0, _REPO)

from visionllama_mm.cli import (config_file, device, existing_file, non_negative_int,  # noqa: E402
                                positive_int)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Benchmark a model (images/s)')
    parser.add_argument('config', type=config_file, help='config file path')
    parser.add_argument('--timm', nargs='+', default=[], metavar='NAME',
                        help='timm model name(s) to measure in the same run')
    parser.add_argument('--reference-file', type=existing_file,
                        help='python file defining reference model factories')
    parser.add_argument('--reference-model', nargs='+', default=[], metavar='NAME',
                        help='factory function(s) of --reference-file to measure')
    parser.add_argument('--precisions', nargs='+', choices=['fp32', 'bf16', 'fp16'],
                        default=['fp32', 'bf16'], help='fp32 and/or autocast dtypes')
    parser.add_argument('--batch-size', type=positive_int, default=32)
    parser.add_argument('--shape', type=positive_int, nargs='+', default=None,
                        help='input size: one int (square) or H W; default from the config')
    parser.add_argument('--iters', type=positive_int, default=10, help='timed iterations per mode')
    parser.add_argument('--warmup', type=non_negative_int, default=3,
                        help='untimed iterations first (torch.utils.benchmark adds two of its '
                        'own before each measurement)')
    parser.add_argument('--repeats', type=positive_int, default=3,
                        help='alternating rounds (best is kept)')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--device', type=device, default=None,
                        help='default: cuda if available, else cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    parser.add_argument('--variant', nargs='+', action='append', default=[],
                        metavar='NAME_OR_KEY=VALUE',
                        help='a reference: NAME then key=value overrides of the config')
    parser.add_argument('--compile', nargs='?', const='inductor', default=None,
                        metavar='BACKEND',
                        help='also measure a torch.compile-d twin of every model (same weights), '
                        'alternating with the eager ones; ratios compiled/compiled and '
                        'compiled/eager. BACKEND: a torch.compile backend (default inductor)')
    parser.add_argument('--compile-mode', default=None,
                        choices=['default', 'reduce-overhead', 'max-autotune'],
                        help='torch.compile mode (with --compile)')
    parser.add_argument('--memory', action='store_true',
                        help='also report the peak memory of one forward+backward step')
    lm = parser.add_argument_group('causal LMs (LVM configs), in tokens/s')
    lm.add_argument('--seq-len', type=positive_int, default=512, help='training sequence length')
    lm.add_argument('--gen-batch', type=positive_int, default=1, help='sequences sampled at once')
    lm.add_argument('--gen-prompt', type=positive_int, default=256, help='prompt tokens')
    lm.add_argument('--gen-new', type=positive_int, default=256, help='sampled tokens per call')
    lm.add_argument('--no-reference', action='store_true',
                    help="skip transformers' LlamaForCausalLM")
    args = parser.parse_args(argv)
    if args.shape and len(args.shape) > 2:
        parser.error(f'argument --shape: one int (square) or H W, got {len(args.shape)} values '
                     f'{args.shape}')
    if args.timm:
        import difflib

        import timm
        for name in args.timm:
            if not timm.is_model(name):
                close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
                parser.error(f'argument --timm: {name!r} is not a timm model name'
                             + (f'; did you mean {", ".join(close)}?' if close else
                                ' (timm.list_models() lists them)'))
    if bool(args.reference_file) != bool(args.reference_model):
        parser.error('--reference-file and --reference-model go together: the file defines the '
                     'factories, --reference-model names the ones to measure')
    if args.compile_mode and not args.compile:
        parser.error('--compile-mode needs --compile')
    if args.compile and args.compile not in torch._dynamo.list_backends(exclude_tags=()):
        parser.error(f'--compile {args.compile}: not a torch.compile backend; one of '
                     f'{", ".join(torch._dynamo.list_backends(exclude_tags=()))}')
    args.variants = []
    for name, *pairs in args.variant:
        if '=' in name or not pairs or any('=' not in p for p in pairs):
            parser.error(f'--variant takes a NAME then key=value overrides, got '
                         f'{[name, *pairs]}')
        if name in [n for n, _ in args.variants]:
            parser.error(f'--variant {name}: the name is given twice; each variant needs its '
                         'own name (it labels a row of the table)')
        args.variants.append((name, {k: DictAction._parse_iterable(v)
                                     for k, v in (p.split('=', 1) for p in pairs)}))
    return args


# ---------------------------------------------------------------- class-conditional diffusion
# ``DiT(...)`` arguments a ``**kwargs`` factory (the official ``DiT_XL_2`` & co.) fixes itself
_DIT_SIZES = ('patch_size', 'hidden_size', 'depth', 'num_heads')


def build_denoiser(cfg: Config, options: Optional[dict] = None):
    """``cfg.model.denoiser`` alone (after ``--cfg-options``-style ``options``), with the
    constructor's random initialisation (no checkpoint is read)."""
    from tools.analysis_tools.analysis import variant_config
    from visionllama_mm.models.builder import build_model_from_cfg
    alone = variant_config(cfg, options or {})
    alone.model = alone.model.denoiser
    return build_model_from_cfg(alone, init=False)


def official_dit_kwargs(denoiser) -> dict:
    """The official ``DiT(...)`` keyword arguments of a built ``DiTLLaMA``."""
    return dict(input_size=denoiser.input_size, patch_size=denoiser.patch_size,
                in_channels=denoiser.in_channels, hidden_size=denoiser.embed_dims,
                depth=len(denoiser.blocks), num_heads=denoiser.blocks[0].attn.num_heads,
                num_classes=denoiser.y_embedder.num_classes,
                learn_sigma=denoiser.out_channels == 2 * denoiser.in_channels)


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_dit_reference(module, name: str, kwargs: dict):
    """Call the factory ``name`` of a reference file with the ``DiT(...)`` arguments it names
    (all of ``kwargs`` but the sizes for a ``**kwargs`` factory, whose name fixes them)."""
    factory = getattr(module, name, None)
    if not callable(factory):
        raise SystemExit(f'--reference-model {name!r} is not a function of {module.__file__}')
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k not in _DIT_SIZES or k in params}
    else:
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return factory(**kwargs)


def benchmark_denoisers(models, batch_size: int, size: int, in_channels: int, num_classes: int,
                        iters: int, warmup: int, repeats: int, precisions, device,
                        modes=('fwd', 'fwd+bwd')):
    """Images/s of ``model(x, t, y)`` (no grad) and of forward+backward of
    ``out.float().square().mean()`` for ``(name, model)`` pairs on one random batch: latents
    (B, in_channels, size, size), timesteps in [0, 1000), labels in [0, num_classes).

    As :func:`tools.analysis_tools.analysis.benchmark_models`: same input and warm-up for all, each
    (precision, mode) timed for every model in turn, best of ``repeats`` rounds; ``modes``
    picks the measured steps.
    Returns one dict per model: ``name``, ``params``, ``'{precision} fwd'`` / ``'... fwd+bwd'``.
    """
    from tools.analysis_tools.analysis import _DTYPES, best_times
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, in_channels, size, size, generator=g).to(device)
    t = torch.randint(0, 1000, (batch_size, ), generator=g).to(device)
    y = torch.randint(0, num_classes, (batch_size, ), generator=g).to(device)
    runners = []
    for name, model in models:
        model.to(device)
        for precision in precisions:
            dtype = _DTYPES[precision]

            def forward(model=model, dtype=dtype):
                model.eval()
                with torch.no_grad(), torch.autocast(device.type, dtype=dtype,
                                                     enabled=dtype is not None):
                    model(x, t, y)

            def train_step(model=model, dtype=dtype):
                model.train()
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    loss = model(x, t, y).float().square().mean()
                loss.backward()
                model.zero_grad(set_to_none=True)

            runners += [r for r in ((name, precision, 'fwd', forward),
                                    (name, precision, 'fwd+bwd', train_step)) if r[2] in modes]
    best = best_times(runners, precisions, iters, warmup, repeats, device, modes)
    return [dict(name=name, params=sum(p.numel() for p in model.parameters()),
                 **{f'{p} {m}': batch_size * iters / best[name, p, m]
                    for p in precisions for m in modes})
            for name, model in models]


def main_diffusion(args, cfg: Config, variants) -> None:
    """The denoiser of a diffusion config beside reference factories and config variants."""
    from tools.analysis_tools.analysis import add_compiled, format_benchmark, load_reference_file
    unsupported = [flag for flag, on in (('--timm', args.timm), ('--memory', args.memory),
                                         ('--channels-last', args.channels_last)) if on]
    if unsupported:
        raise SystemExit(f'{", ".join(unsupported)}: not available for diffusion configs (the '
                         'denoiser is measured beside --reference-file factories and --variant)')
    if bool(args.reference_file) != bool(args.reference_model):
        raise SystemExit('--reference-file and --reference-model go together')
    ours = build_denoiser(cfg)
    if args.shape and (len(args.shape) != 1):
        raise SystemExit(f'--shape: one int (the square latent side) for diffusion configs, '
                         f'got {args.shape}')
    size = args.shape[0] if args.shape else ours.input_size
    kwargs = official_dit_kwargs(ours)
    models = [(f'{type(ours).__name__}({ours.block_type})', ours)]
    if args.reference_file:
        module = load_reference_file(args.reference_file)
        for name in args.reference_model:
            models.append((f'{osp.basename(args.reference_file)}:{name}',
                           build_dit_reference(module, name, kwargs)))
    for name, model in models[1:]:  # the variants differ on purpose; references must not
        if _trainable(model) != _trainable(ours):
            raise SystemExit(f'{name}: {_trainable(model):,} trainable parameters, ours '
                             f'{_trainable(ours):,}: not the same denoiser size')
    models += [(name, build_denoiser(cfg, options)) for name, options in variants]
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if args.compile:
        models = add_compiled(models, compile_options(args))
    rows = benchmark_denoisers(models, args.batch_size, size, ours.in_channels,
                               kwargs['num_classes'], args.iters, args.warmup, args.repeats,
                               args.precisions, device)
    print(f'denoiser images/s, batch {args.batch_size} x {ours.in_channels}x{size}x{size} '
          f'latents, {kwargs}; fwd+bwd loss: mean square of the output; best of {args.repeats} '
          f'rounds x {args.iters} iterations, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads')
    print(format_benchmark(rows, args.precisions))


def compile_options(args) -> dict:
    """``torch.compile`` keyword arguments of ``--compile-mode``."""
    options = dict(backend=args.compile)
    if args.compile_mode not in (None, 'default'):
        options['mode'] = args.compile_mode
    return options


def main():
    args = parse_args()
    import visionllama_mm  # noqa: F401
    from tools.analysis_tools.analysis import (benchmark_models, build_references, format_benchmark,
                                               variant_config)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        from visionllama_mm.engine.checks import check_cfg_options
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    variants = args.variants
    if isinstance(cfg.model.get('denoiser'), dict):
        main_diffusion(args, cfg, variants)
        return
    if cfg.model.get('type') == 'LVM':
        from tools.analysis_tools.analysis import benchmark_causal_lm, format_causal_lm_benchmark
        rows = benchmark_causal_lm(
            cfg, batch_size=args.batch_size, seq_len=args.seq_len, gen_batch=args.gen_batch,
            gen_prompt=args.gen_prompt, gen_new=args.gen_new, iters=args.iters,
            warmup=args.warmup, repeats=args.repeats, precisions=args.precisions,
            device=args.device, reference=not args.no_reference,
            compile=compile_options(args) if args.compile else None)
        print(f'tokens/s, train: batch {args.batch_size} x {args.seq_len}; generate: batch '
              f'{args.gen_batch}, {args.gen_new} new after {args.gen_prompt}; best of '
              f'{args.repeats} rounds x {args.iters} iterations, torch {torch.__version__}, '
              f'{torch.get_num_threads()} threads')
        print(format_causal_lm_benchmark(rows, args.precisions))
        return
    refs = build_references(cfg, timm_names=args.timm, reference_file=args.reference_file,
                            reference_models=args.reference_model, shape=args.shape,
                            variants=variants)
    rows = benchmark_models(cfg, refs, batch_size=args.batch_size,
                            shape=args.shape, iters=args.iters, warmup=args.warmup,
                            repeats=args.repeats, precisions=args.precisions,
                            channels_last=args.channels_last, device=args.device,
                            memory=args.memory,
                            memory_cfgs={n: variant_config(cfg, o) for n, o in variants},
                            compile=compile_options(args) if args.compile else None)
    print(f'images/s, batch {args.batch_size}, best of {args.repeats} rounds x {args.iters} '
          f'iterations, torch {torch.__version__}, {torch.get_num_threads()} threads')
    print(format_benchmark(rows, args.precisions))


if __name__ == '__main__':
    main()
