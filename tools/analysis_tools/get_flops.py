"""Parameters and FLOPs (multiply-accumulates, the convention of the papers) of a config's model.

    python tools/analysis_tools/get_flops.py CONFIG [--shape 224 | --shape 512 1024]
                                             [--cfg-options k=v ...]

Counts convolutions, linears and both attention matmuls (F.scaled_dot_product_attention is
counted as 2*B*heads*Nq*Nk*head_dim MACs). Element-wise ops (norms, RoPE, activations) are not
counted, as in fvcore and the papers.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _REPO not in sys.path:  # the counting code is tools/analysis_tools/analysis.py
    sys.path.insert(0, _REPO)

from visionllama_mm.cli import config_file, positive_int  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Params and FLOPs of a model')
    parser.add_argument('config', type=config_file, help='config file path')
    parser.add_argument('--shape', type=positive_int, nargs='+', default=None,
                        help='input size: one int (square) or H W; default from the config')
    parser.add_argument('--batch-size', type=positive_int, default=1)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    args = parser.parse_args(argv)
    if args.shape and len(args.shape) > 2:
        parser.error(f'argument --shape: one int (square) or H W, got {len(args.shape)} values '
                     f'{args.shape}')
    return args


def main():
    args = parse_args()
    import visionllama_mm  # noqa: F401
    from tools.analysis_tools.analysis import count_complexity
    from visionllama_mm.engine.checks import check_cfg_options
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    result = count_complexity(cfg, shape=args.shape, batch_size=args.batch_size)
    line = '=' * 60
    print(f'{line}\nConfig: {args.config}\nInput shape: {result["input_shape"]}\n'
          f'Params: {result["params"]:,} ({result["params"] / 1e6:.2f} M)\n'
          f'FLOPs (MACs): {result["flops"] / 1e9:.2f} G\n'
          f'Uncounted ops: {", ".join(result["uncounted"]) or "none"}\n{line}')


if __name__ == '__main__':
    main()
