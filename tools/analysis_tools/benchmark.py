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

Causal LMs over visual tokens (an ``LVM`` config) are measured in tokens/s instead: the training
step (forward+backward of the loss) and KV-cache sampling, beside transformers'
``LlamaForCausalLM`` (SDPA) with the same dims and weights (``--no-reference`` to skip it):

    python tools/analysis_tools/benchmark.py configs/lvm/lvm_llama-300m_....py \
        --batch-size 4 --seq-len 512 --gen-prompt 256 --gen-new 256 --iters 3
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
    lm = parser.add_argument_group('causal LMs (LVM configs), in tokens/s')
    lm.add_argument('--seq-len', type=int, default=512, help='training sequence length')
    lm.add_argument('--gen-batch', type=int, default=1, help='sequences sampled at once')
    lm.add_argument('--gen-prompt', type=int, default=256, help='prompt tokens')
    lm.add_argument('--gen-new', type=int, default=256, help='sampled tokens per call')
    lm.add_argument('--no-reference', action='store_true',
                    help="skip transformers' LlamaForCausalLM")
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
    if cfg.model.get('type') == 'LVM':
        from visionllama_mm.analysis import benchmark_causal_lm, format_causal_lm_benchmark
        rows = benchmark_causal_lm(
            cfg, batch_size=args.batch_size, seq_len=args.seq_len, gen_batch=args.gen_batch,
            gen_prompt=args.gen_prompt, gen_new=args.gen_new, iters=args.iters,
            warmup=args.warmup, repeats=args.repeats, precisions=args.precisions,
            device=args.device, reference=not args.no_reference)
        print(f'tokens/s, train: batch {args.batch_size} x {args.seq_len}; generate: batch '
              f'{args.gen_batch}, {args.gen_new} new after {args.gen_prompt}; best of '
              f'{args.repeats} rounds x {args.iters} iterations, torch {torch.__version__}, '
              f'{torch.get_num_threads()} threads')
        print(format_causal_lm_benchmark(rows, args.precisions))
        return
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
