"""End a finished run in order, so that a multi-process CPU run exits cleanly every time.

Left to the interpreter's exit, the data-loader worker processes (kept alive by
``persistent_workers``) and the gloo process group are torn down in no defined order, while
gloo's threads may still be running; under load a rank occasionally dies at exit with SIGABRT
(``terminate called without an active exception``) after a run that trained and validated
correctly, and torchrun reports the whole run as failed. :func:`close_runner` stops the workers,
waits for every rank, and destroys the process group before Python exits.
"""
import torch.distributed as dist

__all__ = ['close_runner']


def _loaders(runner):
    for name in ('_train_loop', '_val_loop', '_test_loop'):
        loop = getattr(runner, name, None)  # a dict when the loop was never built
        loader = getattr(loop, 'dataloader', None)
        if loader is not None:
            yield loader, getattr(loop, 'dataloader_iterator', None)


def close_runner(runner) -> None:
    """Shut down the runner's data-loader workers, then leave the process group (all ranks).

    Call it after ``runner.train()``/``runner.test()`` returned on every rank (it waits for all
    ranks in a barrier); not on an error path, where the other ranks may never arrive.
    """
    for loader, infinite in _loaders(runner):
        iterators = [getattr(loader, '_iterator', None), getattr(infinite, '_iterator', None)]
        for it in iterators:
            shutdown = getattr(it, '_shutdown_workers', None)
            if shutdown is not None:
                shutdown()
        if getattr(loader, '_iterator', None) is not None:
            loader._iterator = None
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
