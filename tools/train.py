"""Train a model from a config of mmpretrain, mmseg or mmdet (picked by the config's default_scope).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--compile]
        [--cfg-options k=v ...]
    bash tools/dist_train.sh CONFIG NUM_PROCESSES [same flags]

Flags mean what they mean in the stock toolboxes' tools/train.py, and nothing else is added: the
configs name their runner, hooks and samplers (configs/_base_/default_runtime.py), so the stock
tools/train.py of mmpretrain, mmseg or mmdet runs a config exactly as this one does. What the
launch or the machine requires is changed at run time and logged in one line
("[visionllama_mm] run-time changes to the config: ..."): a sharded FlexibleRunner config started
as one process runs unsharded; without CUDA: gloo, CPU DDP, BN for SyncBN, bf16 autocast for AMP
(visionllama_mm/engine/launch.py). Every argument is checked before the config is read
(``visionllama_mm.cli``).
"""
import argparse

from mmengine.config import Config, DictAction

from visionllama_mm.cli import checkpoint_file, config_file, non_negative_int, output_dir


def resume_checkpoint(text):
    """``--resume``'s value: ``auto`` (the work dir's latest checkpoint) or a checkpoint file."""
    return text if text == 'auto' else checkpoint_file(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model (mmpretrain / mmseg / mmdet)')
    parser.add_argument('config', type=config_file, help='train config file path')
    parser.add_argument('--work-dir', type=output_dir, help='the dir to save logs and models')
    parser.add_argument('--resume', nargs='?', type=resume_checkpoint, const='auto',
                        help='resume from CKPT, or from the latest checkpoint of the work dir '
                        'when no path is given')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the training step (sets compile=True; a config\'s '
                        'own compile=dict(...) options are kept)')
    parser.add_argument('--no-validate', action='store_true', help='skip validation')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual batch size (needs auto_scale_lr)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=non_negative_int, default=0)
    return parser.parse_args(argv)


def main():
    args = parse_args()
    import visionllama_mm  # noqa: F401  (shims + registries, also for configs without custom_imports)
    from visionllama_mm.engine.launch import (adapt_to_device, build_runner, merge_train_args,
                                              setup_local_rank)
    from visionllama_mm.engine.teardown import close_runner
    setup_local_rank(args)
    cfg = Config.fromfile(args.config)
    cfg = merge_train_args(cfg, args)
    cfg = adapt_to_device(cfg)
    runner = build_runner(cfg)
    runner.train()
    close_runner(runner)  # workers, then the process group: a clean exit on every rank


if __name__ == '__main__':
    main()
