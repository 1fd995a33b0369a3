"""Throughput (images/s) of a config's model, forward and forward+backward, optionally side by side
with a timm model in the same run.

    python tools/analysis_tools/benchmark.py CONFIG [--timm vit_small_patch16_224]
        [--batch-size 32] [--shape 224] [--iters 10] [--warmup 3] [--amp bf16|fp16]
        [--channels-last] [--device cuda|cpu] [--cfg-options k=v ...]

Both models are measured alternately, on the same random input, after the same warm-up; the last
line prints ours/timm for each mode.
"""
import argparse

from mmengine.config import Config, DictAction


def parse_args():
    parser = argparse.ArgumentParser(description='Benchmark a model (images/s)')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--timm', help='a timm model name to measure in the same run')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input size: one int (square) or H W; default from the config')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations per mode')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations first')
    parser.add_argument('--repeats', type=int, default=3, help='alternating rounds (best is kept)')
    parser.add_argument('--amp', choices=['bf16', 'fp16'], default=None, help='autocast dtype')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--device', default=None, help='default: cuda if available, else cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    return parser.parse_args()


def main():
    args = parse_args()
    import visionllama_mm  # noqa: F401
    from visionllama_mm.analysis import benchmark_models
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    rows = benchmark_models(cfg, timm_name=args.timm, batch_size=args.batch_size, shape=args.shape,
                            iters=args.iters, warmup=args.warmup, repeats=args.repeats,
                            amp=args.amp, channels_last=args.channels_last, device=args.device)
    print(f'{"model":40s} {"params(M)":>10s} {"fwd img/s":>10s} {"fwd+bwd img/s":>14s}')
    for r in rows:
        print(f'{r["name"]:40s} {r["params"] / 1e6:10.2f} {r["forward"]:10.1f} '
              f'{r["train"]:14.1f}')
    if len(rows) == 2:
        a, b = rows
        print(f'ratio ours/timm: forward {a["forward"] / b["forward"]:.3f}, '
              f'forward+backward {a["train"] / b["train"]:.3f}')


if __name__ == '__main__':
    main()
