"""What ``tools/train.py`` and ``tools/test.py`` do to a config before the Runner sees it.

One pair of tools serves mmpretrain, mmseg and mmdet configs: the toolbox is read from the config's
``default_scope``. The flags are applied as the stock toolboxes' tools apply them
(:func:`merge_train_args`, :func:`merge_test_args`), and nothing else is added: reproducible
sampling and seeding, atomic checkpoints, the non-finite loss stop and the checked Runner are
entries of the configs (``configs/_base_/default_runtime.py``), so mmpretrain's, mmseg's and
mmdet's own ``tools/train.py`` run a config as ours does.

What the machine or the launch requires is changed at run time by :func:`adapt_to_device` and
logged in one line (``[visionllama_mm] run-time changes to the config: ...``): a ``FlexibleRunner``
config that shards over processes launched as a single process runs unsharded
(:func:`unshard_single_process`); without CUDA: gloo instead of nccl, DDP without ``device_ids``,
FSDP on ``device_id='cpu'``, BN instead of SyncBN, and bf16 autocast
(:class:`~visionllama_mm.engine.amp.CPUBF16AmpOptimWrapper`) instead of mmengine's GPU-only
``AmpOptimWrapper``.
"""
import copy
import os
import os.path as osp
from typing import List, Optional

import torch
from mmengine.config import Config, ConfigDict

from .checks import check_cfg_options

__all__ = ['toolbox_of', 'merge_train_args', 'merge_test_args', 'adapt_to_device', 'build_runner',
           'unshard_single_process']

TOOLBOXES = ('mmpretrain', 'mmseg', 'mmdet')


def _log(msg: str) -> None:
    from mmengine.logging import print_log
    print_log(f'[visionllama_mm] {msg}', logger='current')


def toolbox_of(cfg: Config) -> str:
    """The toolbox a config belongs to, from its ``default_scope`` (mmpretrain if unset)."""
    scope = cfg.get('default_scope', None) or 'mmpretrain'
    if scope not in TOOLBOXES:
        raise ValueError(f'config default_scope={scope!r} is not one of {TOOLBOXES}; '
                         'set default_scope in the config.')
    return scope


def _strip_scope_in_collate(cfg: Config) -> List[str]:
    """A ``collate_fn`` inherited through ``pkg::`` carries ``_scope_``, which the Runner would
    pass on to the collate function as a keyword argument; the loaders where it was dropped."""
    stripped = []
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if isinstance(loader, dict) and isinstance(loader.get('collate_fn'), dict):
            if loader['collate_fn'].pop('_scope_', None) is not None:
                stripped.append(field)
    return stripped


def _set_launcher_and_work_dir(cfg: Config, args) -> None:
    """``--launcher``; work dir from ``--work-dir``, else the config's, else work_dirs/<config>."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])


def merge_train_args(cfg: Config, args) -> Config:
    """Apply ``tools/train.py``'s flags to ``cfg`` (same meaning as the stock tools)."""
    scope = toolbox_of(cfg)
    _set_launcher_and_work_dir(cfg, args)
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') != 'AmpOptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if getattr(args, 'auto_scale_lr', False):
        if cfg.get('auto_scale_lr') is None:
            raise ValueError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` '
                             'in the config.')
        cfg.auto_scale_lr.enable = True
    if scope == 'mmpretrain':  # the stock mmpretrain tool sets these dataloader defaults
        for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if cfg.get(field) is not None:
                loader = ConfigDict(pin_memory=True, persistent_workers=True,
                                    collate_fn=dict(type='default_collate'))
                loader.update(cfg[field])
                cfg[field] = loader
    if getattr(args, 'cfg_options', None):
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    if getattr(args, 'no_validate', False):  # after --cfg-options, which may name val_* keys
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if getattr(args, 'compile', False) and not cfg.get('compile'):
        cfg.compile = True  # options given in the config or --cfg-options compile.x=... are kept
    return cfg


def _default_sample_dirs(cfg: Config) -> None:
    """A ``GenerationMetric`` without ``out_dir`` writes its samples to ``{work_dir}/samples``
    (the work dir is only known here, after ``--work-dir`` and the config name are applied)."""
    evaluators = cfg.get('test_evaluator')
    for ev in evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]:
        if isinstance(ev, dict) and ev.get('type') == 'GenerationMetric' and not ev.get('out_dir'):
            ev['out_dir'] = osp.join(cfg.work_dir, 'samples')
            _log(f'test_evaluator GenerationMetric: samples written to {ev["out_dir"]}')


def merge_test_args(cfg: Config, args) -> Config:
    """Apply ``tools/test.py``'s flags to ``cfg``."""
    scope = toolbox_of(cfg)
    _set_launcher_and_work_dir(cfg, args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if getattr(args, 'cfg_options', None):
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    if getattr(args, 'compile', False) and not cfg.get('compile'):
        cfg.compile = True  # options given in the config or --cfg-options compile.x=... are kept
    _default_sample_dirs(cfg)
    if args.show or args.show_dir:
        hooks = cfg.default_hooks
        if 'visualization' not in hooks:
            raise ValueError('--show/--show-dir need a `visualization` hook in default_hooks.')
        vis = hooks.visualization
        if scope == 'mmpretrain':
            vis.update(enable=True, interval=args.interval, show=args.show, wait_time=args.wait_time)
            if args.show_dir:
                vis.out_dir = args.show_dir
        else:
            vis.update(draw=True, interval=args.interval, show=args.show, wait_time=args.wait_time)
            if args.show_dir and scope == 'mmdet':
                vis.test_out_dir = args.show_dir
            elif args.show_dir:
                cfg.visualizer.save_dir = args.show_dir
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ValueError('--tta needs `tta_model` and `tta_pipeline` in the config.')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    return cfg


DISTRIBUTED_STRATEGIES = ('FSDPStrategy', 'DDPStrategy')


def unshard_single_process(cfg: Config) -> Config:
    """Run a ``FlexibleRunner`` config whose strategy spreads the model over processes
    (``FSDPStrategy``, ``DDPStrategy``) on the checked Runner when it is launched as one process.

    mmengine would build the strategy's wrapper without a process group and fail. With one process
    there is nothing to shard, so ``strategy`` is dropped and ``runner_type`` becomes
    ``'CheckedRunner'`` (logged). FSDP's mixed precision (``param_dtype`` bf16/fp16) becomes
    ``AmpOptimWrapper`` with that dtype: the same low-precision compute over fp32 parameters. A
    ``'full'`` FSDP checkpoint is an ordinary one, so ``tools/test.py`` evaluates it in one process.
    """
    note = _unshard(cfg)
    if note:
        _log(f'run-time changes to the config: {note}')
    return cfg


def _unshard(cfg: Config) -> Optional[str]:
    """:func:`unshard_single_process` without the log; what it changed, or None."""
    strategy = cfg.get('strategy')
    if (cfg.get('launcher', 'none') != 'none' or cfg.get('runner_type') != 'FlexibleRunner'
            or not isinstance(strategy, dict)
            or strategy.get('type') not in DISTRIBUTED_STRATEGIES):
        return None
    note = ''
    precision = (strategy.get('model_wrapper') or {}).get('mixed_precision') or {}
    dtype = precision.get('param_dtype')
    if dtype is not None:
        dtype = str(dtype).replace('torch.', '')
        optim = cfg.get('optim_wrapper')
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(f'{strategy["type"]}: mixed_precision.param_dtype={dtype!r} has no '
                             'single-process equivalent (bfloat16 or float16 autocast).')
        if not isinstance(optim, dict) or optim.get('type', 'OptimWrapper') not in (
                'OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(f'{strategy["type"]}: cannot add the mixed precision '
                             f'({dtype}) to optim_wrapper={optim!r} for a single process.')
        optim.update(type='AmpOptimWrapper', dtype=dtype)
        note = f', its mixed precision -> AmpOptimWrapper(dtype={dtype})'
    cfg.runner_type = 'CheckedRunner'
    cfg.pop('strategy')
    return (f'one process (no launcher): {strategy["type"]} of FlexibleRunner not needed, running '
            f'unsharded on the Runner (runner_type=\'CheckedRunner\'){note}')


def _replace_type(node, old: tuple, new: str, path: str, changed: List[str]):
    if isinstance(node, dict):
        if node.get('type') in old:
            changed.append(f'{path or "<root>"}: {node["type"]} -> {new}')
            node['type'] = new
        for key, value in node.items():
            _replace_type(value, old, new, f'{path}.{key}' if path else str(key), changed)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _replace_type(value, old, new, f'{path}[{i}]', changed)


def adapt_to_device(cfg: Config, cuda: Optional[bool] = None) -> Config:
    """What the launch and the machine require, changed at run time and logged in ONE line.

    * one process (no launcher): a sharding ``FlexibleRunner`` config runs unsharded
      (:func:`unshard_single_process`);
    * a ``collate_fn`` that carries ``_scope_`` (inherited through ``pkg::``) loses it;

    and without CUDA (nothing more when CUDA is available):

    * distributed: gloo backend; DDP built with ``device_ids=None`` (mmengine otherwise passes the
      local rank as a GPU id); a ``FlexibleRunner``'s ``FSDPStrategy`` wrapper built with
      ``device_id='cpu'`` (torch's FSDP otherwise looks for an accelerator), its ``DDPStrategy``
      wrapper with ``device_ids=None``;
    * SyncBN/MMSyncBN -> BN (SyncBN refuses CPU tensors under DDP);
    * ``AmpOptimWrapper`` (GPU-only: CUDA's loss scaler) -> ``CPUBF16AmpOptimWrapper``: bf16
      autocast, no loss scaling (``loss_scale``/``dtype``/``use_fsdp`` dropped, named);
    * ``pin_memory`` off.
    """
    notes: List[str] = []
    note = _unshard(cfg)
    if note:
        notes.append(note)
    stripped = _strip_scope_in_collate(cfg)
    if stripped:
        notes.append('_scope_ dropped from the collate_fn of ' + ', '.join(stripped))
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if not cuda:
        notes += _adapt_to_cpu(cfg)
    if notes:
        _log('run-time changes to the config: ' + '; '.join(notes))
    return cfg


def _adapt_to_cpu(cfg: Config) -> List[str]:
    """The no-CUDA part of :func:`adapt_to_device`; what it changed."""
    notes: List[str] = []
    if cfg.get('launcher', 'none') != 'none':
        env_cfg = cfg.setdefault('env_cfg', ConfigDict())
        dist_cfg = env_cfg.setdefault('dist_cfg', ConfigDict())
        if dist_cfg.get('backend', 'nccl') == 'nccl':
            dist_cfg['backend'] = 'gloo'
            notes.append('no CUDA: distributed backend nccl -> gloo')
        strategy = cfg.get('strategy')
        if cfg.get('runner_type') == 'FlexibleRunner' and isinstance(strategy, dict):
            kind = strategy.get('type')
            if kind in DISTRIBUTED_STRATEGIES:
                wrapper = strategy.get('model_wrapper') or (  # the strategies' defaults
                    ConfigDict(type='MMFullyShardedDataParallel') if kind == 'FSDPStrategy' else
                    ConfigDict(type='MMDistributedDataParallel', broadcast_buffers=False))
                key, value = (('device_id', 'cpu') if kind == 'FSDPStrategy' else
                              ('device_ids', None))
                wrapper[key] = value
                strategy['model_wrapper'] = wrapper
                notes.append(f'no CUDA: {kind} wrapper built with {key}={value!r}')
        else:
            wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
                type='MMDistributedDataParallel', broadcast_buffers=False,
                find_unused_parameters=cfg.get('find_unused_parameters', False))
            wrapper['device_ids'] = None
            cfg.model_wrapper_cfg = wrapper
            notes.append('no CUDA: DDP built with device_ids=None')
    changed: List[str] = []
    _replace_type(cfg.get('model'), ('SyncBN', 'MMSyncBN'), 'BN', 'model', changed)
    if changed:
        notes.append('no CUDA: SyncBN -> BN at ' + ', '.join(c.split(':')[0] for c in changed))
    optim = cfg.get('optim_wrapper')
    if isinstance(optim, dict) and optim.get('type') == 'AmpOptimWrapper':
        dropped = [f'{k}={optim[k]!r}' for k in ('loss_scale', 'dtype', 'use_fsdp')
                   if k in optim and not (k == 'dtype' and optim[k] in (None, 'bfloat16'))]
        keep = {k: v for k, v in optim.items()
                if k not in ('type', 'loss_scale', 'dtype', 'use_fsdp')}
        cfg.optim_wrapper = ConfigDict(type='CPUBF16AmpOptimWrapper', **copy.deepcopy(keep))
        notes.append('no CUDA: AmpOptimWrapper -> CPUBF16AmpOptimWrapper: training in bf16 '
                     'autocast on CPU'
                     + (f' (not used on CPU: {", ".join(dropped)})' if dropped else ''))
    unpinned = []
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if isinstance(loader, dict) and loader.get('pin_memory'):
            loader['pin_memory'] = False
            unpinned.append(field)
    if unpinned:
        notes.append('no CUDA: pin_memory off in ' + ', '.join(unpinned))
    return notes


def build_runner(cfg: Config):
    """Build the Runner as the stock tools do: the config's ``runner_type`` (``'CheckedRunner'``
    in every config of this package: :class:`visionllama_mm.engine.runner.Runner`), else
    mmengine's ``Runner``."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def setup_local_rank(args) -> None:
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(getattr(args, 'local_rank', 0))
