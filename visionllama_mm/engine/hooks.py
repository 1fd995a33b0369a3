"""Stop a run that went bad, and never save what it produced.

:class:`NonFiniteCheckHook` is on by default in every config of the package
(``default_hooks.nonfinite_check``), so mmpretrain's, mmseg's and mmdet's own ``tools/train.py``
run it as ours does. It

* raises one :class:`FloatingPointError` when a training iteration's logged loss terms (the log
  variables of ``train_step``) or its gradient norm (recorded by mmengine's optim wrapper when
  ``clip_grad`` is set) are NaN or infinite for ``patience`` consecutive iterations, naming the
  iteration and epoch, the bad terms and their values, the learning rates and the last checkpoint
  written. An inf/NaN gradient norm under a *dynamic* fp16 loss scaler (``AmpOptimWrapper`` with
  ``loss_scale='dynamic'`` or a dict) is not a failure: the scaler skips that step and lowers its
  scale. Under a static scale (``loss_scale=1.0``, as the bf16 LVM configs) or no scaler it is.
* refuses to write a checkpoint whose model (``state_dict``) or EMA (``ema_state_dict``)
  floating-point tensors hold NaN/inf, naming the first bad tensors;
* stops the run when a validation metric that a ``CheckpointHook`` uses for ``save_best`` is NaN
  or infinite: such a metric never becomes the "best" checkpoint (mmengine's comparison would skip
  a NaN silently and would save an inf as best).

Why not the stock piece: mmdet's ``CheckInvalidLossHook`` checks only ``outputs['loss']`` every
``interval`` iterations with a bare ``assert`` (gone under ``python -O``; its message is only
logged), knows nothing of gradient norms, loss scalers or checkpoints, and lives in mmdet's
registry only; mmengine has no such hook.

The per-iteration check adds no host sync: mmengine's ``RuntimeInfoHook`` (priority VERY_HIGH, so
before this hook) has already turned every log variable into a Python float in the message hub,
and ``clip_grad`` records the gradient norm as a float.
"""
import math
import os.path as osp
from numbers import Number
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.runner import BaseLoop, EpochBasedTrainLoop

from ..registry import HOOKS

__all__ = ['NonFiniteCheckHook', 'check_finite_checkpoint', 'check_best_metrics']

_HINT = ('Lower the learning rate (or add a warm-up, or optim_wrapper.clip_grad), check the data '
         'for inf/NaN pixels or labels, and for fp16 try bf16 or a dynamic loss scale; then '
         'restart from the last checkpoint (tools/train.py --resume) or from scratch.')


def _fmt(value: float) -> str:
    return f'{value:.6g}'


def _is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, Number):
        return True
    return isinstance(value, torch.Tensor) and value.numel() == 1


def _last_checkpoint(runner) -> str:
    """The checkpoint named by ``<work_dir>/last_checkpoint``: the hooks write that file after
    a checkpoint is complete (the message hub's ``last_ckpt`` is set before, so it would name a
    checkpoint that is being refused)."""
    path = osp.join(runner.work_dir, 'last_checkpoint')
    try:
        with open(path) as f:
            last = f.read().strip()
    except OSError:
        last = ''
    return (f'the last checkpoint written is {last}' if last else
            f'no checkpoint was written yet (no {path})')


def _train_loop(runner):
    """The runner's built train loop, or None (never builds one)."""
    loop = getattr(runner, '_train_loop', None)
    return loop if isinstance(loop, BaseLoop) else None


def _where(runner, batch_idx: Optional[int] = None) -> str:
    """The current training iteration in the logger's 1-based numbers, e.g.
    ``iteration 3 (epoch 1, batch 3/23)`` or ``iteration 3 of 400000``."""
    loop = _train_loop(runner)
    if loop is None:
        return 'an unknown iteration (no train loop)'
    text = f'iteration {loop.iter + 1}'
    if isinstance(loop, EpochBasedTrainLoop):
        text += f' (epoch {loop.epoch + 1}'
        if batch_idx is not None:
            try:
                text += f', batch {batch_idx + 1}/{len(loop.dataloader)}'
            except TypeError:  # an iterable dataset without len()
                text += f', batch {batch_idx + 1}'
        text += ')'
    elif getattr(loop, 'max_iters', None):
        text += f' of {loop.max_iters}'
    return text


def _done(runner, meta: Optional[dict] = None) -> str:
    """Where a validation or a checkpoint happens: ``epoch E (iteration I)`` / ``iteration I``
    (the numbers of a checkpoint's ``meta`` when given)."""
    loop = _train_loop(runner)
    epoch = (meta or {}).get('epoch', getattr(loop, 'epoch', None))
    it = (meta or {}).get('iter', getattr(loop, 'iter', None))
    if isinstance(loop, EpochBasedTrainLoop) and epoch is not None:
        return f'epoch {epoch} (iteration {it})'
    return f'iteration {it}' if it is not None else 'an unknown iteration'


def _learning_rates(runner) -> str:
    try:
        lrs = runner.optim_wrapper.get_lr()
    except Exception:  # no optimizer built (e.g. a bare runner in a tool)
        return 'unknown'
    parts = []
    for name, values in lrs.items():
        if name.endswith('base_lr'):
            continue
        values = sorted({float(v) for v in values})
        if len(values) > 3:  # many parameter groups (layer decay): the range
            parts.append(f'{name}={_fmt(values[0])}..{_fmt(values[-1])} '
                         f'({len(values)} values)')
        else:
            parts.append(f'{name}={"/".join(_fmt(v) for v in values)}')
    return ', '.join(parts) or 'unknown'


def _wrappers(optim_wrapper) -> List:
    if isinstance(optim_wrapper, OptimWrapperDict):
        return list(optim_wrapper.values())
    return [optim_wrapper]


def _dynamic_loss_scaler(wrapper) -> bool:
    """Whether ``wrapper`` skips steps with inf/NaN gradients *and lowers its scale* then
    (mmengine's ``AmpOptimWrapper`` with ``loss_scale='dynamic'`` or a dict of GradScaler
    arguments with a backoff factor below 1)."""
    scaler = getattr(wrapper, 'loss_scaler', None)
    if scaler is None or not getattr(scaler, 'is_enabled', lambda: False)():
        return False
    if getattr(wrapper, '_scale_update_param', None) is not None:  # a static scale
        return False
    return scaler.get_backoff_factor() < 1


def _nonfinite_tensors(named: List[Tuple[str, torch.Tensor]]) -> List[str]:
    """Names of the floating-point tensors of ``named`` that hold a NaN or an inf, in order; one
    host transfer per device."""
    by_device: Dict[torch.device, List[Tuple[str, torch.Tensor]]] = {}
    for name, t in named:
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()) \
                and t.numel():
            by_device.setdefault(t.device, []).append((name, t))
    bad = set()
    for items in by_device.values():
        flags = torch.stack([torch.isfinite(t.detach()).all() for _, t in items]).tolist()
        bad.update(name for (name, _), ok in zip(items, flags) if not ok)
    return [name for name, _ in named if name in bad]


def check_finite_checkpoint(runner, checkpoint: dict, owner: str = 'NonFiniteCheckHook',
                            named: Optional[List[Tuple[str, torch.Tensor]]] = None) -> None:
    """Raise :class:`FloatingPointError` if the model or EMA tensors of ``checkpoint`` (the dict
    ``runner.save_checkpoint`` is about to write) hold NaN/inf, naming the first bad tensors.
    ``named`` gives the (name, tensor) pairs to check instead of the checkpoint's."""
    if named is None:
        named = []
        for key in ('state_dict', 'ema_state_dict'):
            state = checkpoint.get(key)
            if isinstance(state, dict):
                named += [(f'{key}[{k!r}]', v) for k, v in state.items()]
    total = sum(isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex())
                for _, v in named)
    bad = _nonfinite_tensors(named)
    if not bad:
        return
    shown = ', '.join(bad[:5]) + (', ...' if len(bad) > 5 else '')
    raise FloatingPointError(
        f'{owner}: not writing the checkpoint of {_done(runner, checkpoint.get("meta"))}: '
        f'{len(bad)} of {total} floating-point tensors hold NaN/inf ({shown}). The weights '
        f'diverged; {_last_checkpoint(runner)}. {_HINT}')


def _best_indicators(hook: CheckpointHook, metrics: dict) -> List[str]:
    if not getattr(hook, 'save_best', None):
        return []
    keys = list(getattr(hook, 'key_indicators', None) or [])
    if 'auto' in keys:  # mmengine resolves it to the first metric at the first validation
        return list(metrics)[:1]
    return keys


def check_best_metrics(runner, hooks: Iterable, metrics: Optional[dict],
                       owner: str = 'NonFiniteCheckHook') -> None:
    """Raise :class:`FloatingPointError` if a metric some ``CheckpointHook`` in ``hooks`` uses
    for ``save_best`` is NaN/inf (it must never become the best checkpoint)."""
    if not metrics:
        return
    bad = {}
    for hook in hooks:
        if not isinstance(hook, CheckpointHook):
            continue
        for key in _best_indicators(hook, metrics):
            value = metrics.get(key)
            if _is_number(value) and not math.isfinite(float(value)):
                bad[key] = float(value)
    if bad:
        terms = ', '.join(f'{k}={_fmt(v)}' for k, v in bad.items())
        raise FloatingPointError(
            f'{owner}: the validation after {_done(runner)} gave a non-finite metric ({terms}); it '
            f'cannot become the best checkpoint (save_best), and the model (or its EMA) computes '
            f'NaN/inf. Nothing was saved as best; {_last_checkpoint(runner)}. {_HINT}')


@HOOKS.register_module()
class NonFiniteCheckHook(Hook):
    """Stop training at the first NaN/inf loss or gradient norm; never save NaN weights or a
    "best" checkpoint from a NaN metric. See the module docstring.

    Enabled in every config of the package as
    ``default_hooks = dict(nonfinite_check=dict(type='NonFiniteCheckHook'))`` (a dict entry, so a
    config that sets other ``default_hooks`` or its own ``custom_hooks`` keeps it). Turn it off
    with ``default_hooks.nonfinite_check=None``.

    Args:
        patience (int): Consecutive bad iterations tolerated before the error; 1 (the default)
            stops at the first one. A good iteration resets the count.
        check_grad_norm (bool): Also check the gradient norm that ``clip_grad`` records
            (``train/grad_norm``); steps skipped by a dynamic fp16 loss scaler are not failures.
        check_checkpoint (bool): Refuse to write a checkpoint whose model/EMA tensors are
            non-finite.
        check_best_metric (bool): Stop when a ``save_best`` metric is NaN/inf.
    """

    priority = 'NORMAL'  # after RuntimeInfoHook and EMAHook; before LoggerHook, CheckpointHook

    def __init__(self, patience: int = 1, check_grad_norm: bool = True,
                 check_checkpoint: bool = True, check_best_metric: bool = True):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f'NonFiniteCheckHook: patience must be an int >= 1, got '
                             f'{patience!r}.')
        self.patience = patience
        self.check_grad_norm = check_grad_norm
        self.check_checkpoint = check_checkpoint
        self.check_best_metric = check_best_metric
        self._bad = 0
        self._weights_checked_at: Optional[int] = None

    # ------------------------------------------------------------------------- training
    def _loss_terms(self, runner, outputs) -> Dict[str, float]:
        """The non-finite scalar log variables of this iteration, from the message hub
        (already floats) where RuntimeInfoHook put them."""
        bad = {}
        scalars = runner.message_hub.log_scalars
        for key, value in (outputs or {}).items():
            if not _is_number(value):
                continue
            buffer = scalars.get(f'train/{key}')
            number = buffer.current() if buffer is not None else float(value)
            if not math.isfinite(number):
                bad[key] = number
        return bad

    def _grad_norm(self, runner) -> Optional[float]:
        """This iteration's gradient norm if it is non-finite and counts as a failure."""
        if not self.check_grad_norm:
            return None
        buffer = runner.message_hub.log_scalars.get('train/grad_norm')
        if buffer is None:
            return None
        value = buffer.current()
        if math.isfinite(value):
            return None
        wrappers = _wrappers(runner.optim_wrapper)
        stepped = [w for w in wrappers if getattr(w, 'should_update', lambda: True)()]
        if not stepped:  # accumulating: the recorded norm is an earlier step's
            return None
        if all(_dynamic_loss_scaler(w) for w in stepped):
            return None  # skipped by the loss scaler, which lowered its scale
        return value

    def before_train(self, runner) -> None:
        self._bad, self._weights_checked_at = 0, None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        bad = self._loss_terms(runner, outputs)
        grad_norm = self._grad_norm(runner)
        if not bad and grad_norm is None:
            self._bad = 0
            self._check_weights_if_saving(runner, by_epoch=False)
            return
        self._bad += 1
        what = []
        if bad:
            what.append('non-finite loss terms ' +
                        ', '.join(f'{k}={_fmt(v)}' for k, v in bad.items()))
        if grad_norm is not None:
            what.append(f'non-finite gradient norm grad_norm={_fmt(grad_norm)}')
        what = '; '.join(what)
        if self._bad < self.patience:
            runner.logger.warning(f'NonFiniteCheckHook: {what} at {_where(runner, batch_idx)} '
                                  f'({self._bad} of patience={self.patience}).')
            self._check_weights_if_saving(runner, by_epoch=False)
            return
        raise FloatingPointError(
            f'NonFiniteCheckHook: training diverged at {_where(runner, batch_idx)}: {what} '
            f'({self._bad} consecutive bad iteration(s), patience={self.patience}); learning '
            f'rate {_learning_rates(runner)}; {_last_checkpoint(runner)}. {_HINT}')

    # ---------------------------------------------------------------------- checkpoints
    def _check_weights_if_saving(self, runner, by_epoch: bool) -> None:
        """Check the weights before a ``CheckpointHook`` (priority VERY_LOW, after this hook)
        saves at this point: the stock hook deletes the oldest checkpoint (``max_keep_ckpts``)
        *before* it writes the new one, so refusing in ``before_save_checkpoint`` alone could
        leave a run with no checkpoint."""
        if not self.check_checkpoint:
            return
        due = False
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook) or bool(hook.by_epoch) != by_epoch:
                continue
            if by_epoch:
                due |= bool(hook.every_n_epochs(runner, hook.interval, hook.save_begin)
                            or (hook.save_last and hook.is_last_train_epoch(runner)))
            else:
                due |= bool(hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                            or (hook.save_last and hook.is_last_train_iter(runner)))
        if not due:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        named = [(f'state_dict[{k!r}]', v) for k, v in
                 list(model.named_parameters()) + list(model.named_buffers())]
        for hook in runner.hooks:
            ema = getattr(hook, 'ema_model', None)
            if isinstance(ema, torch.nn.Module):
                named += [(f'ema_state_dict[{k!r}]', v) for k, v in ema.state_dict().items()]
        meta = dict(epoch=runner.epoch + 1, iter=runner.iter) if by_epoch else \
            dict(epoch=runner.epoch, iter=runner.iter + 1)
        check_finite_checkpoint(runner, dict(meta=meta), named=named)
        self._weights_checked_at = runner.iter

    def after_train_epoch(self, runner) -> None:
        self._check_weights_if_saving(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # the weights were checked on their devices just before this save (nothing steps between)
        if self.check_checkpoint and self._weights_checked_at != runner.iter:
            check_finite_checkpoint(runner, checkpoint)

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        if self.check_best_metric:
            check_best_metrics(runner, runner.hooks, metrics)
