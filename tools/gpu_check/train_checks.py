"""GPU acceptance checks: every model family trains through the Runner in fp16, bf16 and compiled.

    python tools/gpu_check/train_checks.py --out DIR [--device cuda|cpu] [--tiny] [--only NAME ...]
                                           [--jobs N]

1. **Training.** For each family (``_families.py``: VisionLLaMA plain / pyramid / MAE, ConvNeXt V2
   classifier and sparse FCMAE, ViTamin classifier and CLIP, LVM decoder, VQGAN, DiT-LLaMA,
   SiT-LLaMA) a shipped config, shrunk in sizes, data and schedule, trains 3 iterations through
   the Runner that ``tools/train.py`` builds (``merge_train_args`` -> ``adapt_to_device`` ->
   ``build_runner``) three times: eager under fp16 AMP (mmengine's ``AmpOptimWrapper``,
   ``dtype='float16'``, dynamic loss scaler), eager under bf16 AMP, and ``compile=True`` under
   bf16 (inductor; ``fallback_random`` so that random draws inside the forward equal eager's).
   Checked: every loss finite, and the compiled losses within ``TOLERANCE`` of eager bf16
   (relative 2e-2 at the first iteration, 5e-2 after the optimizer steps; 1e-1 for CLIP).
2. **Fused attention.** One more eager iteration per family and precision (bf16 and fp16) under
   ``torch.nn.attention.sdpa_kernel([FLASH_ATTENTION, EFFICIENT_ATTENTION])``: an attention call
   the fused kernels cannot take raises instead of falling back to the math kernel. Without
   ``--tiny`` this is repeated at every attention head width of the family's shipped configs
   (e.g. 32 / 64 / 96 / 100 / 128 for the LLaMA decoder sizes); the LLaMA decoder also decodes
   a few tokens with its KV cache (a boolean mask over the cache). Every SDPA call is
   recorded (head width, dtype, query / key lengths, mask). On a CPU the same restriction selects
   the CPU flash kernel: a dry run of the same calls, reported but not failing the exit status
   (with ``--tiny`` the restriction is on the eager bf16 training run, which it can fail).
3. **Dense.** The ConvNeXt V2 Mask R-CNN (mmdet) and UperNet (mmseg) configs, shrunk, one
   iteration each on COCO-json / ADE20K folders. They need mmcv's compiled ops (``mmcv._ext``):
   without them the step prints one line saying so and is skipped.

Writes ``DIR/train_checks.json`` and ``DIR/train_checks.md`` (one table), the Runner's logs of
every run under ``DIR/logs/<family>/<mode>/`` (with the run's console output in ``console.log``),
and the generated data under ``DIR/data``. Exits 1 when any check failed, after running them all.

``--device cpu --tiny`` is the dry run of the test suite: batch 2, the CPU's fp16 / bf16 autocast
with ``torch.amp.GradScaler('cpu')`` (mmengine's ``AmpOptimWrapper`` asserts a GPU), compiled runs
with dynamo's ``eager`` backend (graph capture, eager kernels) except VisionLLaMA plain (inductor,
with the GPU run's options), the attention restriction on the eager bf16 run, no head-width sweep.
Without ``--tiny`` every compiled run uses inductor, on the CPU too.
"""
import argparse
import contextlib
import copy
import importlib.util
import json
import math
import os
import os.path as osp
import signal
import subprocess
import sys
import time
import traceback
import warnings
from argparse import Namespace
from typing import Callable, Dict, List, Optional

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
for _path in (REPO, HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# Compiled bf16 vs eager bf16: |compiled - eager| <= rtol * |eager| + atol at each iteration,
# ``rtol`` at the first, ``rtol_later`` at the second and third.
# The first loss comes from the same weights and data: both runs compute in bf16 (8 mantissa
# bits, a rounding error of 2^-9 = 2e-3 per op) and inductor fuses and reorders reductions, so
# activations differ by a few bf16 roundings; the loss, reduced in fp32 from them, moves far less
# than 2e-2 of itself. The later losses follow one and two optimizer steps taken on gradients
# with the same relative noise, and AdamW's first steps move every parameter by about the
# learning rate whatever its gradient's size, so a parameter whose gradient is at the noise
# level steps either way: 5e-2. The CLIP loss (InfoNCE over a batch of a few pairs, a learned
# temperature) drops by half in one step and amplifies this most: 1e-1 there (with identical
# kernels, dynamo's eager backend, its third loss already differs by 5e-3).
TOLERANCE = dict(rtol=2e-2, rtol_later=5e-2, atol=1e-3)
FAMILY_TOLERANCE: Dict[str, dict] = {'vitamin_clip': dict(rtol_later=1e-1)}

MODES = ('fp16', 'bf16', 'compiled_bf16')


def parse_args(argv=None):
    from _families import FAMILY_NAMES
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', required=True, help='folder for the json, table, logs and data')
    parser.add_argument('--device', choices=['cuda', 'cpu'], default=None,
                        help='default: cuda when available, else cpu')
    parser.add_argument('--tiny', action='store_true',
                        help='the CPU dry run: batch 2, dynamo\'s eager backend (inductor for '
                        'VisionLLaMA plain), no head-width sweep')
    parser.add_argument('--only', nargs='+', choices=FAMILY_NAMES + ['dense'], metavar='NAME',
                        help=f'run only these checks: {", ".join(FAMILY_NAMES)}, dense')
    parser.add_argument('--jobs', type=int, default=None,
                        help='checks run in parallel processes (default: 4 on cuda, 1 on cpu)')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    return args


# ------------------------------------------------------------------------------------------ data
def write_data(root: str) -> Dict[str, str]:
    """Every folder the families read (written once; a second run reuses them)."""
    import _data
    paths = dict(imagenet=osp.join(root, 'imagenet'), tiles32=osp.join(root, 'tiles32'),
                 shards=osp.join(root, 'image_text'), tokens=osp.join(root, 'tokens'),
                 latents=osp.join(root, 'latents'), coco=osp.join(root, 'coco'),
                 ade20k=osp.join(root, 'ADEChallengeData2016'))
    done = osp.join(root, 'written')
    if osp.isfile(done):
        return paths
    _data.write_imagenet(paths['imagenet'])
    _data.write_imagenet(paths['tiles32'], size=32, seed=1)
    _data.write_image_text_shards(paths['shards'])
    _data.write_tokens(paths['tokens'])
    _data.write_latents(paths['latents'])
    _data.write_coco(paths['coco'])
    _data.write_ade20k(paths['ade20k'])
    open(done, 'w').close()
    return paths


# ------------------------------------------------------------------------------ mixed precision
def register_cpu_amp_wrapper():
    """``CPUAmpOptimWrapper``: mmengine's ``AmpOptimWrapper`` (its backward, step, loss-scaler
    state) with the CPU's ``torch.amp.GradScaler('cpu')`` and ``torch.autocast('cpu', dtype)``.
    The stock class asserts a GPU in its constructor, so the CPU dry run cannot use it as is."""
    import torch
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    from mmengine.registry import OPTIM_WRAPPERS

    if 'CPUAmpOptimWrapper' in OPTIM_WRAPPERS.module_dict:
        return

    @OPTIM_WRAPPERS.register_module()
    class CPUAmpOptimWrapper(AmpOptimWrapper):

        def __init__(self, loss_scale='dynamic', dtype='float16', **kwargs):
            OptimWrapper.__init__(self, **kwargs)
            self._scale_update_param = None
            if loss_scale == 'dynamic':
                self.loss_scaler = torch.amp.GradScaler('cpu')
            else:
                self._scale_update_param = float(loss_scale)
                self.loss_scaler = torch.amp.GradScaler('cpu', init_scale=float(loss_scale))
            self.cast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype

        @contextlib.contextmanager
        def optim_context(self, model):
            with OptimWrapper.optim_context(self, model), \
                    torch.autocast('cpu', dtype=self.cast_dtype):
                yield


def set_precision(cfg, dtype: str, cuda: bool) -> None:
    """The config's optimizer, paramwise rules, constructor and clipping under AMP in ``dtype``
    (fp16 with the dynamic loss scaler; bf16 with the config's own static scale if it has one),
    one optimizer step per iteration."""
    from mmengine.config import ConfigDict
    old = cfg.optim_wrapper
    keep = {k: v for k, v in old.items() if k not in ('type', 'dtype', 'loss_scale', 'use_fsdp')}
    keep['accumulative_counts'] = 1
    loss_scale = 'dynamic'
    if dtype == 'bfloat16' and old.get('type') == 'AmpOptimWrapper' and old.get('dtype') == dtype:
        loss_scale = old.get('loss_scale', 'dynamic')
    cfg.optim_wrapper = ConfigDict(type='AmpOptimWrapper' if cuda else 'CPUAmpOptimWrapper',
                                   dtype=dtype, loss_scale=loss_scale, **keep)


# ------------------------------------------------------------------------------ the Runner runs
def loss_recorder():
    """A Runner hook (an instance) that keeps each iteration's loss and loss scale."""
    from mmengine.hooks import Hook

    class LossRecorder(Hook):
        priority = 'VERY_LOW'

        def __init__(self):
            self.losses: List[float] = []
            self.scales: List[float] = []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.losses.append(float(outputs['loss']))
            scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
            if scaler is not None:
                self.scales.append(float(scaler.get_scale()))

    return LossRecorder()


def sdpa_recorder():
    """A ``TorchFunctionMode`` that counts every ``F.scaled_dot_product_attention`` call by
    (head width, dtype, query and key lengths, mask) in ``calls``."""
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    class SdpaRecorder(TorchFunctionMode):

        def __init__(self):
            super().__init__()
            self.calls: Dict[str, int] = {}

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is F.scaled_dot_product_attention:
                q, k = args[0], args[1]
                mask = kwargs.get('attn_mask', args[3] if len(args) > 3 else None)
                causal = kwargs.get('is_causal', args[5] if len(args) > 5 else False)
                kind = ('causal' if causal else 'no mask' if mask is None else
                        f'{"additive" if mask.dtype.is_floating_point else "bool"} mask')
                key = (f'head_dim {q.shape[-1]}, {str(q.dtype).replace("torch.", "")}, '
                       f'q {q.shape[-2]} x k {k.shape[-2]}, {kind}')
                self.calls[key] = self.calls.get(key, 0) + 1
            return func(*args, **kwargs)

    return SdpaRecorder()


_CONFIGS = {}


def build_cfg(family, data, work_dir: str, batch: int, cuda: bool):
    """The family's config as ``tools/train.py --no-validate`` gives it to the Runner, shrunk."""
    from mmengine.config import Config

    from visionllama_mm.engine.launch import adapt_to_device, merge_train_args
    if family.name not in _CONFIGS:  # read once per family (inheritance through pkg:: is slow)
        _CONFIGS[family.name] = Config.fromfile(osp.join(REPO, family.config))
    cfg = copy.deepcopy(_CONFIGS[family.name])
    family.shrink(cfg, data, batch)
    # the schedule: 3 iterations at the base learning rate, no checkpoint, a log line each
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=3, val_interval=10 ** 9)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False)
    # the text log (and console.log) only: a vis backend would write the config a second time
    if cfg.get('visualizer') is not None:
        cfg.visualizer.vis_backends = []
    args = Namespace(config=family.config, work_dir=work_dir, launcher='none', amp=False,
                     resume=None, auto_scale_lr=False, cfg_options=None, compile=False,
                     no_validate=True)
    cfg = merge_train_args(cfg, args)
    return adapt_to_device(cfg, cuda=cuda)


def train_once(family, data, mode: str, opts) -> dict:
    """One Runner run of 3 (or, for the attention check, 1) iterations -> its record."""
    import torch
    import torch._dynamo

    from visionllama_mm.engine.launch import build_runner
    from visionllama_mm.engine.teardown import close_runner
    cuda = opts.device == 'cuda'
    work_dir = osp.join(opts.out, 'logs', family.name, mode)
    os.makedirs(work_dir, exist_ok=True)
    record = dict(mode=mode)
    start = time.perf_counter()
    sdpa = mode.startswith('sdpa') or mode in opts.sdpa_in
    dtype = 'float16' if 'fp16' in mode else 'bfloat16'
    recorder, runner = None, None
    with open(osp.join(work_dir, 'console.log'), 'w') as console, \
            contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
        try:
            cfg = build_cfg(family, data, work_dir, opts.batch, cuda)
            head_dim = mode.partition('@head_dim')[2]
            if head_dim:
                family.set_head_dim(cfg, int(head_dim))
            set_precision(cfg, dtype, cuda)
            if mode.startswith('sdpa'):
                cfg.train_cfg.max_iters = 1
            cfg.experiment_name = f'{family.name}-{mode}-{os.getpid()}-{time.time_ns()}'
            if mode.startswith('compiled'):
                backend = opts.backend(family.name)
                cfg.compile = (dict(backend=backend, options=dict(fallback_random=True))
                               if backend == 'inductor' else dict(backend=backend))
                record['backend'] = backend
                torch._dynamo.reset()
            runner = build_runner(cfg)
            losses = loss_recorder()
            runner.register_hook(losses)
            if sdpa:
                from torch.nn.attention import SDPBackend, sdpa_kernel
                recorder = sdpa_recorder()
                # torch says why a fused kernel refused a call in a UserWarning: kept (with any
                # other warning of the run but deprecations)
                with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]), \
                        warnings.catch_warnings(record=True) as caught, recorder:
                    warnings.simplefilter('always')
                    try:
                        runner.train()
                        if family.decode:
                            decode_with_cache(runner, cuda, dtype)
                    finally:
                        reasons = sorted({str(w.message).splitlines()[0][:300] for w in caught
                                          if not issubclass(w.category, (
                                              DeprecationWarning, FutureWarning))})[:20]
                        if reasons:
                            record['sdpa_warnings'] = reasons
            else:
                runner.train()
            record['losses'] = losses.losses
            if losses.scales:
                record['loss_scale'] = losses.scales
            record['finite'] = bool(losses.losses) and all(map(math.isfinite, losses.losses))
            record['ok'] = record['finite'] and len(losses.losses) == cfg.train_cfg.max_iters
        except Exception as err:  # one failing run must not hide the others
            traceback.print_exc()
            record.update(ok=False, error=f'{type(err).__name__}: {str(err).strip()}'[:2000])
        finally:
            if recorder is not None:
                record['sdpa_calls'] = recorder.calls
            if runner is not None:
                with contextlib.suppress(Exception):
                    close_runner(runner)
            if cuda:  # an asynchronous CUDA error belongs to this run
                with contextlib.suppress(Exception):
                    torch.cuda.synchronize()
                    torch.cuda.empty_cache()
    record['time_s'] = round(time.perf_counter() - start, 2)
    return record


def decode_with_cache(runner, cuda: bool, dtype: str) -> None:
    """The LLaMA decoder's generation path: a 16-token prompt, then 2 tokens one at a time with a
    preallocated KV cache (the masked attention over the cache), in ``dtype`` autocast."""
    import torch
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    decoder = model.backbone
    device = next(decoder.parameters()).device
    ids = torch.randint(0, 8192, (2, 18), device=device)
    with torch.no_grad(), torch.autocast('cuda' if cuda else 'cpu', dtype=getattr(torch, dtype)):
        caches = decoder.new_caches(capacity=18)
        decoder(ids[:, :16], caches=caches)
        for i in (16, 17):
            decoder(ids[:, i:i + 1], caches=caches)


def check_family(family, data, opts, progress: Optional[Callable[[dict], None]] = None) -> dict:
    """Every run of one family -> its record (modes, compiled-vs-eager, attention check).
    ``progress(record)`` is called with the runs so far after each run."""
    result = dict(config=family.config, note=family.note, runs={}, ok=True)
    missing = [m for m in family.needs if importlib.util.find_spec(m) is None]
    if missing:
        result.update(ok=None, skipped=f'{", ".join(missing)} not installed')
        print(f'[{family.name}] skipped: {result["skipped"]}', flush=True)
        return result
    # the compiled run last: it takes longest (inductor), and a time limit then cuts it alone
    modes = [m for m in MODES if not m.startswith('compiled')]
    sdpa_dtypes = ['bf16'] if opts.tiny else ['bf16', 'fp16']
    if not opts.sdpa_in:
        modes += [f'sdpa_{d}' for d in sdpa_dtypes]
    if not opts.tiny and family.set_head_dim is not None:
        for d in family.head_dims():
            modes += [f'sdpa_{t}@head_dim{d}' for t in sdpa_dtypes]
    modes += [m for m in MODES if m.startswith('compiled')]
    for mode in modes:
        run = train_once(family, data, mode, opts)
        result['runs'][mode] = run
        status = 'ok' if run.get('ok') else 'FAILED'
        losses = ', '.join(f'{v:.4f}' for v in run.get('losses', []))
        print(f'[{family.name}] {mode}: {status} ({run["time_s"]:.1f} s) losses [{losses}]'
              + (f' -- {run["error"].splitlines()[0]}' if 'error' in run else ''), flush=True)
        if progress is not None:
            progress(result)
    result['compiled_vs_eager'] = compare(family.name, result['runs'])
    training_ok = all(result['runs'][m].get('ok') for m in MODES)
    sdpa_runs = {m: r for m, r in result['runs'].items()
                 if m.startswith('sdpa') or m in opts.sdpa_in}
    result['sdpa'] = dict(
        ok=all(r.get('ok') for r in sdpa_runs.values()),
        dry_run=opts.device == 'cpu',
        failed={m: (r.get('error') or 'a non-finite loss').splitlines()[0]
                for m, r in sdpa_runs.items()
                if not r.get('ok')},
        calls=sorted({c for r in sdpa_runs.values() for c in r.get('sdpa_calls', {})}))
    sdpa_counts = opts.device == 'cuda'
    result['ok'] = bool(training_ok and result['compiled_vs_eager']['ok']
                        and (result['sdpa']['ok'] or not sdpa_counts))
    return result


def compare(name: str, runs: dict) -> dict:
    """Compiled bf16 losses against eager bf16's, with the family's tolerance."""
    tol = dict(TOLERANCE, **FAMILY_TOLERANCE.get(name, {}))
    eager, compiled = runs['bf16'].get('losses', []), runs['compiled_bf16'].get('losses', [])
    if not eager or len(eager) != len(compiled):
        return dict(ok=False, **tol, reason='missing losses')
    rel = [abs(c - e) / max(abs(e), 1e-12) for e, c in zip(eager, compiled)]
    ok = all(abs(c - e) <= (tol['rtol'] if i == 0 else tol['rtol_later']) * abs(e) + tol['atol']
             for i, (e, c) in enumerate(zip(eager, compiled)))
    return dict(ok=ok, max_rel_diff=max(rel), rel_diff=rel, **tol)


# ------------------------------------------------------------------------------------- dense
def mmcv_ops_available() -> Optional[str]:
    """None when mmcv's compiled ops import, else why not."""
    try:
        importlib.import_module('mmcv._ext')
    except Exception as err:  # ImportError, or an undefined symbol of a mismatched build
        return f'{type(err).__name__}: {err}'
    return None


DET_CONFIG = 'configs/convnextv2/mask-rcnn_convnextv2-tiny_fcmae-pre_fpn_8xb4-amp-lsj-3x_coco.py'
SEG_CONFIG = ('configs/convnextv2/'
              'upernet_convnextv2-tiny_fcmae-ft-pre_8xb2-amp-160k_ade20k-512x512.py')


def check_dense(data, opts) -> dict:
    """Mask R-CNN and UperNet (ConvNeXt V2, the configs' own AMP), one iteration each."""
    why = mmcv_ops_available()
    if why is not None:
        line = (f'[dense] skipped: mmcv\'s compiled ops (mmcv._ext) are not importable ({why}); '
                'Mask R-CNN needs roi_align / nms from them')
        print(line, flush=True)
        return dict(ok=None, skipped=line)
    # the test suite's shrinking options of these configs, read by path (an installed package
    # named ``tests`` must not shadow the repository's)
    spec = importlib.util.spec_from_file_location(
        'dense_opts', osp.join(REPO, 'tests', 'tools', 'dense_opts.py'))
    dense_opts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dense_opts)
    det_opts, seg_opts = dense_opts.det_opts, dense_opts.seg_opts
    runs = {}
    # training only (as --no-validate): the options of the validation and test loaders dropped
    train_only = lambda opts: [o for o in opts if not o.startswith(('val_', 'test_'))]  # noqa
    det = train_only([*dense_opts.CONVNEXTV2_MRCNN, *det_opts(data['coco'], lsj=False),
                      'train_dataloader.dataset.serialize_data=False'])
    seg = train_only([*dense_opts.CONVNEXTV2_UPERNET, *seg_opts(data['ade20k'], iters=1),
                      'train_dataloader.dataset.serialize_data=False'])
    for name, config, options in (('mask_rcnn', DET_CONFIG, det), ('upernet', SEG_CONFIG, seg)):
        runs[name] = run_dense(name, config, options, opts)
        r = runs[name]
        print(f'[dense] {name}: {"ok" if r.get("ok") else "FAILED"} ({r["time_s"]:.1f} s) '
              f'losses {r.get("losses")}'
              + (f' -- {r["error"].splitlines()[0]}' if 'error' in r else ''), flush=True)
    return dict(ok=all(r.get('ok') for r in runs.values()), runs=runs)


def run_dense(name: str, config: str, options: List[str], opts) -> dict:
    """``tools/train.py CONFIG --no-validate --cfg-options ...`` for one iteration, in-process."""
    from mmengine.config import Config, DictAction

    from visionllama_mm.engine.launch import adapt_to_device, build_runner, merge_train_args
    from visionllama_mm.engine.teardown import close_runner
    work_dir = osp.join(opts.out, 'logs', 'dense', name)
    os.makedirs(work_dir, exist_ok=True)
    record = dict(config=config)
    start = time.perf_counter()
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg_options = parser.parse_args(['--cfg-options', *options,
                                     'default_hooks.checkpoint.interval=1000',
                                     'default_hooks.logger.interval=1']).cfg_options
    runner = None
    with open(osp.join(work_dir, 'console.log'), 'w') as console, \
            contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
        try:
            cfg = Config.fromfile(osp.join(REPO, config))
            args = Namespace(config=config, work_dir=work_dir, launcher='none', amp=False,
                             resume=None, auto_scale_lr=False, cfg_options=cfg_options,
                             compile=False, no_validate=True)
            cfg = adapt_to_device(merge_train_args(cfg, args), cuda=opts.device == 'cuda')
            if cfg.train_cfg.get('type', '').startswith('IterBased'):
                cfg.train_cfg.max_iters = 1
            else:
                cfg.train_cfg.max_epochs = 1
            cfg.default_hooks.checkpoint = None
            cfg.experiment_name = f'dense-{name}-{os.getpid()}-{time.time_ns()}'
            runner = build_runner(cfg)
            losses = loss_recorder()
            runner.register_hook(losses)
            runner.train()
            record.update(losses=losses.losses, iterations=len(losses.losses),
                          optim_wrapper=type(runner.optim_wrapper).__name__)
            record['ok'] = bool(losses.losses) and all(map(math.isfinite, losses.losses))
        except Exception as err:
            traceback.print_exc()
            record.update(ok=False, error=f'{type(err).__name__}: {str(err).strip()}'[:2000])
        finally:
            if runner is not None:
                with contextlib.suppress(Exception):
                    close_runner(runner)
    record['time_s'] = round(time.perf_counter() - start, 2)
    return record


# ------------------------------------------------------------------------------------ report
def _fmt(losses):
    return ' '.join(f'{v:.4g}' for v in losses) if losses else '-'


def write_table(report: dict, path: str) -> None:
    tiny = ' (--tiny)' if report['tiny'] else ''
    lines = [f'Training checks on {report["device_name"]} (torch {report["torch"]}), '
             f'{report["date"]}, {report["time_s"]:.0f} s{tiny}',
             '',
             '| family | fp16 losses (scale) | bf16 losses | compiled bf16 losses | '
             'compiled vs eager: rel. diff first, later / tol. | fused SDPA | status |',
             '|---|---|---|---|---|---|---|']
    for name, fam in report['families'].items():
        if fam.get('skipped'):
            lines.append(f'| {name} | | | | | | skipped: {fam["skipped"]} |')
            continue
        if 'runs' not in fam:
            lines.append(f'| {name} | | | | | | FAILED: {fam.get("error", "")} |')
            continue
        runs = fam['runs']
        fp16 = runs.get('fp16', {})
        scale = f' ({fp16["loss_scale"][-1]:g})' if fp16.get('loss_scale') else ''
        comp = fam.get('compiled_vs_eager', {})  # absent when stopped at the time limit
        cmp_text = (f'{comp["rel_diff"][0]:.1e}, {max(comp["rel_diff"][1:], default=0):.1e} / '
                    f'{comp["rtol"]:g}, {comp["rtol_later"]:g}' if 'rel_diff' in comp
                    else comp.get('reason', '-'))
        sdpa = fam.get('sdpa')
        if sdpa is None:
            sdpa_text = '-'
        else:
            sdpa_text = ('no SDPA call' if not sdpa['calls'] and sdpa['ok'] else
                         'ok' if sdpa['ok'] else 'FAILED: ' + '; '.join(sdpa['failed']))
            if sdpa['dry_run']:
                sdpa_text += ' (CPU dry run)'
        errors = [f'{m}: {r["error"].splitlines()[0]}' for m, r in runs.items()
                  if 'error' in r and not m.startswith('sdpa')]
        if fam.get('error'):
            errors.append(fam['error'])
        status = 'ok' if fam['ok'] else 'FAILED' + (': ' + '; '.join(errors) if errors else '')
        lines.append(f'| {name} | {_fmt(fp16.get("losses"))}{scale} | '
                     f'{_fmt(runs.get("bf16", {}).get("losses"))} | '
                     f'{_fmt(runs.get("compiled_bf16", {}).get("losses"))} '
                     f'({runs.get("compiled_bf16", {}).get("backend", "-")}) | {cmp_text} | '
                     f'{sdpa_text} | {status} |')
    dense = report.get('dense')
    if dense is not None:
        lines += ['', '| dense (1 iteration) | losses | status |', '|---|---|---|']
        if dense.get('skipped') or 'error' in dense:
            lines.append(f'| Mask R-CNN, UperNet | | '
                         f'{dense.get("skipped") or "FAILED: " + dense["error"]} |')
        for name, r in dense.get('runs', {}).items():
            lines.append(f'| {name} (`{r["config"]}`) | {_fmt(r.get("losses"))} | '
                         f'{"ok" if r.get("ok") else "FAILED: " + r.get("error", "")[:200]} |')
    lines += ['', 'SDPA calls run under the fused-only restriction (head width, dtype, query x '
              'key length, mask):', '']
    for name, fam in report['families'].items():
        calls = fam.get('sdpa', {}).get('calls')
        if calls is not None:
            lines.append(f'- {name}: ' + ('; '.join(calls) if calls else 'none'))
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def run_parallel(names: List[str], opts, done: Callable[[str, dict], None]) -> None:
    """Each check in its own process (``--worker``), ``opts.jobs`` at a time; ``done(name,
    result)`` as each finishes."""
    parts = osp.join(opts.out, 'parts')
    os.makedirs(parts, exist_ok=True)
    pending, running = list(names), {}

    def stop(signum, frame):
        """A time limit ends the workers too (they hold the GPU); what they finished is kept."""
        for name, proc in running.items():
            proc.kill()
            part = osp.join(parts, f'{name}.json')
            result = dict(runs={})
            if osp.isfile(part):
                with contextlib.suppress(ValueError), open(part) as f:
                    result = json.load(f)
            done(name, dict(result, ok=False, error='stopped at the time limit after '
                            f'{", ".join(result.get("runs", {})) or "no run"}'))
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while pending or running:
        while pending and len(running) < opts.jobs:
            name = pending.pop(0)
            cmd = [sys.executable, osp.abspath(__file__), '--out', opts.out, '--device',
                   opts.device, '--only', name, '--worker'] + (['--tiny'] if opts.tiny else [])
            running[name] = subprocess.Popen(cmd, cwd=REPO)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                del running[name]
                part = osp.join(parts, f'{name}.json')
                if osp.isfile(part):
                    with open(part) as f:
                        done(name, json.load(f))
                else:
                    done(name, dict(ok=False, error=f'its process exited {proc.returncode} '
                                    'without a result'))
        time.sleep(0.5)


def write_report(results: dict, names: List[str], opts, seconds: float) -> dict:
    """``train_checks.json`` and ``.md`` of the checks finished so far (written after each one,
    so a run stopped at its time limit leaves the finished ones; the others read "not run")."""
    import torch
    results = {n: results.get(n, dict(ok=False, error='not run (stopped before it finished)'))
               for n in names}
    report = dict(
        device=opts.device, tiny=opts.tiny, torch=torch.__version__,
        device_name=(torch.cuda.get_device_name() if opts.device == 'cuda' else 'CPU'),
        date=time.strftime('%Y-%m-%d %H:%M'), tolerance=dict(default=TOLERANCE, **FAMILY_TOLERANCE),
        time_s=round(seconds, 1),
        families={n: r for n, r in results.items() if n != 'dense'},
        dense=results.get('dense'))
    failed = [n for n, r in results.items() if r.get('ok') is False]
    skipped = [n for n, r in results.items() if r.get('ok') is None]
    report.update(ok=not failed, failed=failed, skipped=skipped)
    with open(osp.join(opts.out, 'train_checks.json'), 'w') as f:
        json.dump(report, f, indent=1)
    write_table(report, osp.join(opts.out, 'train_checks.md'))
    return report


def main(argv=None) -> int:
    opts = parse_args(argv)
    import torch
    if opts.device is None:
        opts.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if opts.device == 'cuda' and not torch.cuda.is_available():
        print('train_checks.py: --device cuda, but torch.cuda.is_available() is False '
              f'(torch {torch.__version__}, built for CUDA {torch.version.cuda})', file=sys.stderr)
        return 2
    if opts.jobs is None:
        opts.jobs = 4 if opts.device == 'cuda' else 1
    opts.batch = 2 if opts.tiny else 4
    # --tiny: dynamo's graph capture with eager kernels ('eager'), and VisionLLaMA plain through
    # inductor with the options of the GPU run (inductor's CPU code generation is slow: only
    # this one model pays it)
    opts.backend = lambda name: ('inductor' if not opts.tiny or name == 'visionllama_plain'
                                 else 'eager')
    # --tiny: the fused-attention restriction and recording ride on the eager bf16 run
    opts.sdpa_in = ('bf16', ) if opts.tiny else ()
    os.makedirs(opts.out, exist_ok=True)
    from _families import FAMILIES

    import visionllama_mm  # noqa: F401  (registries and shims, as tools/train.py)
    register_cpu_amp_wrapper()
    start = time.perf_counter()
    data = write_data(osp.join(opts.out, 'data'))
    names = opts.only or [f.name for f in FAMILIES] + ['dense']
    by_name = {f.name: f for f in FAMILIES}

    def run_one(name):
        if name == 'dense':
            return check_dense(data, opts)
        return check_family(by_name[name], data, opts)

    if opts.worker:
        (name, ) = names
        part = osp.join(opts.out, 'parts', f'{name}.json')

        from visionllama_mm.utils import write_json

        def save(result):  # written whole, then renamed: the parent never reads half a file
            write_json(part, result)

        save(check_dense(data, opts) if name == 'dense' else
             check_family(by_name[name], data, opts, progress=save))
        return 0
    results = {}

    def done(name, result):
        results[name] = result
        write_report(results, names, opts, time.perf_counter() - start)

    if opts.jobs > 1 and len(names) > 1:
        run_parallel(names, opts, done)
    else:
        for name in names:
            done(name, run_one(name))
    report = write_report(results, names, opts, time.perf_counter() - start)
    failed, skipped = report['failed'], report['skipped']
    print(f'train_checks: {len(names) - len(failed) - len(skipped)} passed, '
          f'{len(failed)} failed{" (" + ", ".join(failed) + ")" if failed else ""}, '
          f'{len(skipped)} skipped{" (" + ", ".join(skipped) + ")" if skipped else ""} in '
          f'{report["time_s"]:.0f} s; {osp.join(opts.out, "train_checks.md")}', flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
