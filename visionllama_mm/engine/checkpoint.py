"""Checkpoints that survive a crash while they are being written.

mmengine's ``CheckpointHook`` deletes the oldest checkpoint (``max_keep_ckpts``) and the previous
best one *before* it writes the new one, and writes files and ``last_checkpoint`` in place. A run
killed in between (out of memory, a pre-empted node, Ctrl-C) can be left with a truncated newest
file, no complete one, or a ``last_checkpoint`` that names a deleted file, and ``--resume`` fails.

:class:`AtomicCheckpointHook` is that hook with the order made safe, for local work dirs:

1. the new checkpoint is written to a hidden temporary file in the same directory, flushed to disk
   (``fsync``) and renamed over the final name (``os.replace``, atomic on POSIX and Windows);
2. then ``last_checkpoint`` is replaced the same way, so it only ever names a complete file;
3. only then are outdated and superseded checkpoints deleted.

A crash therefore leaves the previous checkpoint loadable and named by ``last_checkpoint`` (and at
worst a stale ``.<name>.tmp`` file or one extra old checkpoint). Other storage backends keep the
stock behaviour. Every config of the package asks for it with
``default_hooks.checkpoint.type='AtomicCheckpointHook'`` (``configs/_base_/default_runtime.py``);
:func:`use_atomic_checkpoint_hook` makes the same change to a config of your own.

It never writes a checkpoint whose model or EMA tensors hold NaN/inf, and a NaN/inf ``save_best``
metric never becomes the best checkpoint: both raise :class:`FloatingPointError`. These are the
checks of :class:`~visionllama_mm.engine.hooks.NonFiniteCheckHook`, which does them instead when
the run has it (every config of the package does, so the stock ``CheckpointHook`` gets them too).
"""
import os
import os.path as osp
from typing import List

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from ..registry import HOOKS
from ..utils.files import atomic_write, replace_atomically
from .hooks import NonFiniteCheckHook, check_best_metrics, check_finite_checkpoint

__all__ = ['AtomicCheckpointHook', 'use_atomic_checkpoint_hook']


def _tmp_name(filename: str) -> str:
    head, tail = osp.split(filename)
    return osp.join(head, f'.{tail}.tmp')


class _DeferredRemoval:
    """A file backend whose ``remove``/``rmtree`` are queued until :meth:`flush`."""

    def __init__(self, backend):
        self.backend = backend
        self.pending: List[tuple] = []

    def remove(self, path):
        self.pending.append(('remove', path))

    def rmtree(self, path):
        self.pending.append(('rmtree', path))

    def flush(self) -> None:
        for op, path in self.pending:
            getattr(self.backend, op)(path)
        self.pending.clear()

    def __getattr__(self, name):
        return getattr(self.backend, name)


class _AtomicSaves:
    """The runner, with ``save_checkpoint`` writing through :meth:`AtomicCheckpointHook._save`."""

    def __init__(self, runner, hook: 'AtomicCheckpointHook'):
        self._runner, self._hook = runner, hook

    def save_checkpoint(self, out_dir, filename, file_client_args=None, **kwargs):
        self._hook._save(self._runner, out_dir, filename, file_client_args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._runner, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) that never leaves a run without a complete
    checkpoint named by ``last_checkpoint``; see the module docstring."""

    def _local(self) -> bool:
        return isinstance(self.file_backend, (LocalBackend, _DeferredRemoval))

    def _save(self, runner, out_dir: str, filename: str, file_client_args=None, **kwargs) -> None:
        """``runner.save_checkpoint(out_dir, filename, ...)`` through a temporary file."""
        runner = getattr(runner, '_runner', runner)
        tmp = _tmp_name(filename)
        tmp_path, path = osp.join(out_dir, tmp), osp.join(out_dir, filename)
        try:
            runner.save_checkpoint(out_dir, tmp, file_client_args, **kwargs)
            if is_main_process():
                replace_atomically(tmp_path, path, fsync=True)
        except BaseException:
            if is_main_process() and osp.exists(tmp_path):
                os.remove(tmp_path)
            raise

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not self._local():
            return super()._save_checkpoint_with_step(runner, step, meta)
        runner = getattr(runner, '_runner', runner)
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        self._save(runner, self.out_dir, filename, self.file_client_args,
                   save_optimizer=self.save_optimizer,
                   save_param_scheduler=self.save_param_scheduler, meta=meta,
                   by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        last = osp.join(runner.work_dir, 'last_checkpoint')
        with atomic_write(last, fsync=True, tmp=_tmp_name(last)) as f:
            f.write(self.last_ckpt)
        if outdated is not None and outdated != step:
            old = osp.join(self.out_dir, self.filename_tmpl.format(outdated))
            if osp.isfile(old):
                self.file_backend.remove(old)
            elif osp.isdir(old):  # checkpoints saved by deepspeed are directories
                self.file_backend.rmtree(old)

    def _checked_elsewhere(self, runner) -> bool:
        """A :class:`NonFiniteCheckHook` in the run does the finiteness checks."""
        return any(isinstance(hook, NonFiniteCheckHook) for hook in runner.hooks)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Never write model/EMA tensors that hold NaN/inf (also without the config's
        :class:`NonFiniteCheckHook`)."""
        if not self._checked_elsewhere(runner):
            check_finite_checkpoint(runner, checkpoint, owner=type(self).__name__)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self._checked_elsewhere(runner):  # a NaN/inf metric never becomes the best
            check_best_metrics(runner, [self], metrics, owner=type(self).__name__)
        if not self._local():
            return super()._save_best_checkpoint(runner, metrics)
        backend = self.file_backend
        self.file_backend = deferred = _DeferredRemoval(backend)
        try:  # the stock logic, with the previous best removed after the new one is complete
            super()._save_best_checkpoint(_AtomicSaves(runner, self), metrics)
        finally:
            self.file_backend = backend
        deferred.flush()


def use_atomic_checkpoint_hook(cfg: Config) -> Config:
    """Use :class:`AtomicCheckpointHook` where ``default_hooks.checkpoint`` is the stock hook."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if isinstance(hook, dict) and hook.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        hook['type'] = 'AtomicCheckpointHook'
    return cfg
