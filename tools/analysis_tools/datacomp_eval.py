"""The DataComp zero-shot suite for a CLIP config + checkpoint: every task, a table, the average.

    python tools/analysis_tools/datacomp_eval.py CONFIG CHECKPOINT --data-root DIR
        [--tasks KEY_OR_NAME ...] [--work-dir DIR] [--out results.json]
        [--batch-size N] [--num-workers N] [--cfg-options k=v ...] [--verbose]
    python tools/analysis_tools/datacomp_eval.py --write-configs

DIR holds one folder per task, as DataComp's ``download_evalsets.py DIR`` writes them
(``wds_cars_test``, ``wds_vtab-pets_test``, ...; the retrieval sets as clip_benchmark's
``wds_flickr30k`` and ``wds_mscoco_captions``; WinoGAViL as the Hub's parquet conversion in
``winogavil``, or the ``datasets`` cache ``hf_cache/nlphuji___winogavil`` that DataComp's script
writes). Every folder is checked before the model is built: a missing one is named with the
command that downloads it.

Each task runs through the Runner with its family's config (``configs/vitamin/datacomp/``), the
model, its test pipeline and data preprocessor taken from CONFIG, in fp32. The table lists each
task's main metric (percent) as DataComp reports it; the average is over the tasks run that count
in DataComp's 38 (all 38 in a full run), with the papers' column groups (ImageNet, IN dist. shift,
VTAB, retrieval). ``--out`` writes all of it as json.
``--write-configs`` writes the family configs from the task table and exits.
"""
import argparse
import json
import os.path as osp
import sys
import time

from mmengine.config import Config, DictAction

from visionllama_mm.cli import checkpoint_file, config_file, output_dir, output_file, positive_int

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='DataComp zero-shot suite of a CLIP model')
    parser.add_argument('config', type=config_file, nargs='?', help='the CLIP model config')
    parser.add_argument('checkpoint', type=checkpoint_file, nargs='?', help='its checkpoint')
    parser.add_argument('--data-root', help='the folder of the DataComp test sets')
    parser.add_argument('--tasks', nargs='+', help='DataComp keys or names (default: all)')
    parser.add_argument('--work-dir', type=output_dir, help='logs (default work_dirs/datacomp)')
    parser.add_argument('--out', type=output_file, help='write the results to this json file')
    parser.add_argument('--batch-size', type=positive_int, default=None,
                        help='samples per batch: images, or WinoGAViL games of 5-12 images '
                             '(default: the family config\'s, 64 images or 8 games)')
    parser.add_argument('--num-workers', type=int, default=None, help='data loader workers')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override entries of CONFIG, key=value')
    parser.add_argument('--verbose', action='store_true',
                        help='the Runner\'s full log of every task (default: warnings only)')
    parser.add_argument('--write-configs', action='store_true',
                        help='write configs/vitamin/datacomp/*.py from the task table and exit')
    args = parser.parse_args(argv)
    if not args.write_configs:
        missing = [n for n in ('config', 'checkpoint', 'data_root') if not getattr(args, n)]
        if missing:
            parser.error('give CONFIG, CHECKPOINT and --data-root (missing: '
                         + ', '.join(m.replace('_', '-') for m in missing) + ')')
    return args


def selected_tasks(names):
    from visionllama_mm.evaluation.datacomp import TASKS, task_by_name
    if not names:
        return [t for t in TASKS if t.in_average]
    try:
        return [task_by_name(n) for n in names]
    except KeyError as err:
        raise SystemExit(f'datacomp_eval: {err.args[0]}') from None


def check_folders(tasks, data_root):
    """One error for every missing dataset folder, with the command that downloads each."""
    from visionllama_mm.evaluation.datacomp import data_folder, missing_data, prepare_command
    missing = [t for t in tasks
               if t.supported and missing_data(t, data_folder(t, data_root))]
    if missing:
        lines = [f'  {osp.join(data_root, t.folder)} ({t.name}): '
                 f'{prepare_command(t, osp.join(data_root, t.folder))}' for t in missing]
        raise SystemExit(
            f'datacomp_eval: {len(missing)} dataset folder(s) missing under {data_root} (a '
            'webdataset needs test/nshards.txt and its shards, WinoGAViL its test-split table). '
            'Download them with:\n' + '\n'.join(lines)
            + '\nor every DataComp test set at once with DataComp\'s `python '
            f'download_evalsets.py {data_root}` (the retrieval sets from clip_benchmark, as '
            'above).')


def task_config(model_cfg: Config, task, args) -> Config:
    """CONFIG with the test loader, evaluator and loop of ``task``'s family config."""
    from visionllama_mm.evaluation.datacomp import CONFIG_DIR, data_folder
    family = Config.fromfile(osp.join(REPO, CONFIG_DIR, f'{task.family}.py'))
    cfg = model_cfg.copy()
    loader = family.test_dataloader.copy()
    model_loader = model_cfg.get('test_dataloader') or {}
    pipeline = model_loader.get('dataset', {}).get('pipeline') or model_cfg.get('test_pipeline')
    if not pipeline:
        raise SystemExit(f'datacomp_eval: {args.config} has no test pipeline (test_pipeline or '
                         'test_dataloader.dataset.pipeline).')
    loader.dataset.update(data_root=data_folder(task, args.data_root), task=task.key,
                          hub_repo=task.repo, pipeline=pipeline)
    if args.batch_size:
        loader.batch_size = args.batch_size
    if args.num_workers is not None:
        loader.num_workers = args.num_workers
    cfg.test_dataloader = loader
    cfg.test_evaluator = family.test_evaluator
    cfg.test_cfg = family.test_cfg
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler',
                'val_dataloader', 'val_cfg', 'val_evaluator', 'auto_scale_lr'):
        cfg.pop(key, None)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    cfg.launcher = 'none'
    if not args.verbose:  # the Runner's config dump and model summary, once per task
        cfg.log_level = 'WARNING'
    cfg.work_dir = osp.join(args.work_dir or osp.join('work_dirs', 'datacomp'),
                            task.folder)
    return cfg, family.datacomp_metric


def run_task(model_cfg: Config, task, args) -> dict:
    from visionllama_mm.engine.launch import adapt_to_device, build_runner
    from visionllama_mm.engine.teardown import close_runner
    cfg, metric = task_config(model_cfg, task, args)
    cfg = adapt_to_device(cfg)
    runner = build_runner(cfg)
    start = time.time()
    metrics = runner.test()
    close_runner(runner)
    metrics = {k: float(v) for k, v in metrics.items()}
    if metric not in metrics:
        raise RuntimeError(f'datacomp_eval: {task.name}: the evaluator reported '
                           f'{sorted(metrics)}, not {metric}.')
    return dict(key=task.key, name=task.name, group=task.group, metric=task.metric,
                value=metrics[metric], metrics=metrics, seconds=round(time.time() - start, 1))


def summarise(results: list, tasks: list) -> dict:
    """The average over the tasks run that count in DataComp's average, and the column groups."""
    from visionllama_mm.evaluation.datacomp import AVERAGE_SIZE, GROUP_NAMES, TASKS
    counted = [r for r in results if next(t for t in TASKS if t.key == r['key']).in_average]
    summary = dict(num_tasks=len(counted), of=AVERAGE_SIZE)
    summary['average'] = sum(r['value'] for r in counted) / len(counted) if counted else None
    groups = {}
    for key, name in GROUP_NAMES.items():
        values = [r['value'] for r in counted if r['group'] == key]
        members = [t for t in TASKS if t.group == key and t.in_average]
        if values:
            groups[name] = dict(value=sum(values) / len(values), tasks=len(values),
                                of=len(members))
    summary['groups'] = groups
    summary['left_out'] = [dict(name=t.name, reason=t.reason) for t in tasks
                           if t.in_average and not t.supported]
    return summary


def print_table(results: list, summary: dict) -> None:
    width = max([len(r['name']) for r in results] + [28])
    line = '-' * (width + 44)
    print(line)
    print(f'{"task":<{width}}  {"group":<10} {"metric":<22} {"value":>7}')
    print(line)
    for r in results:
        print(f'{r["name"]:<{width}}  {r["group"] or "-":<10} {r["metric"]:<22} '
              f'{r["value"]:7.2f}')
    print(line)
    for name, g in summary['groups'].items():
        of = f' ({g["tasks"]} of {g["of"]} tasks)' if g['tasks'] != g['of'] else ''
        print(f'{name:<{width}}  {"":<10} {"mean":<22} {g["value"]:7.2f}{of}')
    for left in summary['left_out']:
        print(f'{left["name"]}: not evaluated, {left["reason"]}.')
    if summary['average'] is not None:
        print(f'Average over {summary["num_tasks"]} of {summary["of"]} tasks: '
              f'{summary["average"]:.2f}')
    print(line)


def main(argv=None):
    args = parse_args(argv)
    import visionllama_mm  # noqa: F401
    from visionllama_mm.evaluation.datacomp import write_configs
    if args.write_configs:
        for path in write_configs(REPO):
            print(f'wrote {osp.relpath(path, REPO)}')
        return
    tasks = selected_tasks(args.tasks)
    for t in tasks:
        if not t.supported:
            print(f'datacomp_eval: {t.name} is not evaluated: {t.reason}.', file=sys.stderr)
    runnable = [t for t in tasks if t.supported]
    if not runnable:
        raise SystemExit('datacomp_eval: none of the tasks asked for is supported.')
    check_folders(runnable, args.data_root)
    model_cfg = Config.fromfile(args.config)
    if args.cfg_options:
        from visionllama_mm.engine.checks import check_cfg_options
        check_cfg_options(model_cfg, args.cfg_options)
        model_cfg.merge_from_dict(args.cfg_options)
    results = []
    for i, task in enumerate(runnable):
        results.append(run_task(model_cfg, task, args))
        print(f'[{i + 1}/{len(runnable)}] {task.name}: {results[-1]["metric"]} '
              f'{results[-1]["value"]:.2f} ({results[-1]["seconds"]:.1f} s)', flush=True)
    summary = summarise(results, tasks)
    print_table(results, summary)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint, tasks=results,
                           **summary), f, indent=2)
        print(f'results written to {args.out}')


if __name__ == '__main__':
    main()
