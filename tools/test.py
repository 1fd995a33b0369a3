"""Evaluate a checkpoint with a config of mmpretrain, mmseg or mmdet (picked by default_scope).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--show-dir DIR]
                         [--cfg-options k=v ...]
    bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [same flags]

The checkpoint is loaded with torch.load(weights_only=True) (visionllama_mm.compat). The flags are
applied as the stock tools/test.py applies them; a GenerationMetric without ``out_dir`` writes its
samples to WORK_DIR/samples (logged); what the launch or the machine requires is changed at run
time and logged in one line, as in tools/train.py.
"""
import argparse

from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process

from visionllama_mm.cli import (checkpoint_file, config_file, non_negative_float, non_negative_int,
                                output_dir, output_file, positive_int)


def pickle_file(text):
    """``--out``: a new .pkl / .pickle file (what mmengine's ``DumpResults`` writes)."""
    output_file(text)
    if not text.endswith(('.pkl', '.pickle')):
        raise argparse.ArgumentTypeError(f'{text!r}: the predictions are dumped as a pickle; '
                                         'the file name must end with .pkl or .pickle')
    return text


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a model (mmpretrain / mmseg / mmdet)')
    parser.add_argument('config', type=config_file, help='test config file path')
    parser.add_argument('checkpoint', type=checkpoint_file, help='checkpoint file')
    parser.add_argument('--work-dir', type=output_dir,
                        help='the dir to save the evaluation metrics')
    parser.add_argument('--out', type=pickle_file, help='dump the predictions to this pickle file')
    parser.add_argument('--show-dir', type=output_dir, help='save visualized predictions here')
    parser.add_argument('--show', action='store_true', help='show predictions in a window')
    parser.add_argument('--interval', type=positive_int, default=None,
                        help='visualize every N samples (with --show / --show-dir; default 1)')
    parser.add_argument('--wait-time', type=non_negative_float, default=None,
                        help='display time of --show in seconds (default 2)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (tta_model)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=non_negative_int, default=0)
    args = parser.parse_args(argv)
    if args.interval is not None and not (args.show or args.show_dir):
        parser.error(f'argument --interval: {args.interval} has no effect without --show or '
                     '--show-dir (it sets how often predictions are drawn)')
    if args.wait_time is not None and not args.show:
        parser.error(f'argument --wait-time: {args.wait_time:g} has no effect without --show '
                     '(it is the display time of the window)')
    args.interval = 1 if args.interval is None else args.interval
    args.wait_time = 2. if args.wait_time is None else args.wait_time
    return args


def main():
    args = parse_args()
    import visionllama_mm  # noqa: F401
    from visionllama_mm.engine.launch import (adapt_to_device, build_runner, merge_test_args,
                                              setup_local_rank)
    from visionllama_mm.engine.teardown import close_runner
    setup_local_rank(args)
    cfg = Config.fromfile(args.config)
    cfg = merge_test_args(cfg, args)
    cfg = adapt_to_device(cfg)
    runner = build_runner(cfg)
    if args.out:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    metrics = runner.test()
    # asked before close_runner leaves the process group (after it every process says rank 0)
    main_process = is_main_process()
    close_runner(runner)  # workers, then the process group: a clean exit on every rank

    def plain(v):
        try:
            return round(float(v), 4)  # python and numpy scalars
        except (TypeError, ValueError):
            return v

    if main_process:  # every rank holds the same metrics; print them once
        print({k: plain(v) for k, v in (metrics or {}).items()})


if __name__ == '__main__':
    main()
