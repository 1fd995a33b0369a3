"""Throughput (images/s) of a config's model in fp32 and bf16, forward and forward+backward, side by
side with reference models in the same run.

    python tools/analysis_tools/benchmark.py CONFIG [--timm vit_small_patch16_224 ...]
        [--reference-file path/to/models.py --reference-model NAME ...]
        [--precisions fp32 bf16] [--batch-size 32] [--shape 224] [--iters 10] [--warmup 3]
        [--repeats 3] [--channels-last] [--device cuda|cpu] [--cfg-options k=v ...]
        [--variant NAME k=v ...] [--memory]

References are timm models (``--timm``) or model factories defined in any python file
(``--reference-file`` with one or more ``--reference-model`` function names, each called with
``num_classes``), e.g. an official repository's model file in an environment that has its
dependencies. All models are measured alternately on the same random input after the same warm-up,
the best of ``--repeats`` rounds kept. The table ends with ours/reference and bf16/fp32 ratios.
``--variant NAME k=v ...`` (repeatable) adds the same config with overrides as a reference, e.g.
FCMAE's masked-dense encoder beside the sparse one:

    python tools/analysis_tools/benchmark.py configs/convnextv2/fcmae_convnextv2-atto_...py \
        --variant masked-dense model.backbone.impl=masked_dense --precisions fp32 --memory

``--memory`` adds each model's peak memory of one forward+backward step.
"""
import argparse

from mmengine.config import Config, DictAction


def parse_args():
    parser = argparse.ArgumentParser(description='Benchmark a model (images/s)')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--timm', nargs='+', default=[], metavar='NAME',
                        help='timm model name(s) to measure in the same run')
    parser.add_argument('--reference-file', help='python file defining reference model factories')
    parser.add_argument('--reference-model', nargs='+', default=[], metavar='NAME',
                        help='factory function(s) of --reference-file to measure')
    parser.add_argument('--precisions', nargs='+', choices=['fp32', 'bf16', 'fp16'],
                        default=['fp32', 'bf16'], help='fp32 and/or autocast dtypes')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input size: one int (square) or H W; default from the config')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations per mode')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations first')
    parser.add_argument('--repeats', type=int, default=3, help='alternating rounds (best is kept)')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--device', default=None, help='default: cuda if available, else cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    parser.add_argument('--variant', nargs='+', action='append', default=[],
                        metavar='NAME_OR_KEY=VALUE',
                        help='a reference: NAME then key=value overrides of the config')
    parser.add_argument('--memory', action='store_true',
                        help='also report the peak memory of one forward+backward step')
    return parser.parse_args()


def main():
    args = parse_args()
    import torch

    import visionllama_mm  # noqa: F401
    from visionllama_mm.analysis import (benchmark_models, build_references, format_benchmark,
                                         variant_config)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    variants = []
    for name, *pairs in args.variant:
        if '=' in name or not pairs or any('=' not in p for p in pairs):
            raise SystemExit(f'--variant takes a NAME then key=value overrides, got '
                             f'{[name, *pairs]}')
        variants.append((name, {k: DictAction._parse_iterable(v)
                                for k, v in (p.split('=', 1) for p in pairs)}))
    refs = build_references(cfg, timm_names=args.timm, reference_file=args.reference_file,
                            reference_models=args.reference_model, shape=args.shape,
                            variants=variants)
    rows = benchmark_models(cfg, refs, batch_size=args.batch_size,
                            shape=args.shape, iters=args.iters, warmup=args.warmup,
                            repeats=args.repeats, precisions=args.precisions,
                            channels_last=args.channels_last, device=args.device,
                            memory=args.memory,
                            memory_cfgs={n: variant_config(cfg, o) for n, o in variants})
    print(f'images/s, batch {args.batch_size}, best of {args.repeats} rounds x {args.iters} '
          f'iterations, torch {torch.__version__}, {torch.get_num_threads()} threads')
    print(format_benchmark(rows, args.precisions))


if __name__ == '__main__':
    main()
