"""A run killed mid-epoch and resumed with ``tools/train.py --resume`` ends as the uninterrupted
run: same final weights, same logged loss at every iteration (quickstart config, random
augmentation on, persistent data-loader workers)."""
import glob
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from visionllama_mm.compat import load_checkpoint_file
from visionllama_mm.engine.reproducibility import ReproducibleSampler, get_rng_state, set_rng_state
from ..conftest import REPO, run_tool

QUICKSTART = 'configs/quickstart/visionllama-tiny-p4_1xb64-20e_digits.py'
ITERS_PER_EPOCH = 6  # 96 training images, batch 16


def _opts(digits_root, workers=2, *extra):
    persistent = workers > 0
    return [
        '--cfg-options',
        f'train_dataloader.dataset.data_root={digits_root}',
        f'val_dataloader.dataset.data_root={digits_root}',
        'train_dataloader.dataset.indices=96', 'train_dataloader.batch_size=16',
        'val_dataloader.dataset.indices=40', 'val_dataloader.batch_size=20',
        f'train_dataloader.num_workers={workers}',
        f'train_dataloader.persistent_workers={persistent}',
        'val_dataloader.num_workers=1', 'val_dataloader.persistent_workers=True',
        'train_cfg.max_epochs=4', 'train_cfg.val_interval=1',
        'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=1',
        *extra,
    ]


def _train(python, work, opts, resume=None):
    args = [python, 'tools/train.py', QUICKSTART, '--work-dir', work]
    if resume is not None:
        args += ['--resume'] + ([resume] if resume != 'auto' else [])
    return run_tool(args + opts)


def _complete_checkpoint(work, name, epoch):
    """Why ``work``'s checkpoint ``name`` is not yet the one to resume from, or None once it is:
    ``last_checkpoint`` names it and it loads with ``torch.load(weights_only=True)`` as the state
    at the end of ``epoch``."""
    last = osp.join(work, 'last_checkpoint')
    if not osp.exists(last):
        return f'{last} does not exist'
    named = open(last).read().strip()
    if osp.basename(named) != name:
        return f'{last} names {named!r}, not {name}'
    try:
        meta = load_checkpoint_file(osp.join(work, name))['meta']
    except Exception as err:  # absent, or not complete: a torch.load error of any kind
        return f'{name} does not load with weights_only=True: {type(err).__name__}: {err}'
    if (meta['epoch'], meta['iter']) != (epoch, epoch * ITERS_PER_EPOCH):
        return f"{name} holds epoch {meta['epoch']}, iter {meta['iter']}"
    return None


def _train_and_kill(python, work, opts, epoch, batch, timeout=300):
    """Start training and SIGKILL it (and its workers) mid-epoch ``epoch``: once the checkpoint
    of epoch ``epoch - 1`` is complete (:func:`_complete_checkpoint`) and the run has gone
    ``batch`` iterations past it (its scalars.json records iteration ``(epoch - 1) * 6 + batch``).
    Fails, naming what was missing, if the run ends or ``timeout`` seconds pass first."""
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.Popen([python, 'tools/train.py', QUICKSTART, '--work-dir', work] + opts,
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines = []  # read on a thread: a full pipe would stall the run
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    name, step = f'epoch_{epoch - 1}.pth', (epoch - 1) * ITERS_PER_EPOCH + batch
    deadline, complete, waiting = time.monotonic() + timeout, False, 'nothing checked yet'
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if not complete:
                waiting = _complete_checkpoint(work, name, epoch - 1)
                complete = waiting is None
            if complete:
                done = _last_iteration(work)
                if done >= step:
                    waiting = None
                    break
                waiting = f'{name} is complete, iteration {step} not reached (last: {done})'
            time.sleep(0.05)
    finally:
        ended = proc.poll()
        if ended is None:  # killed here: on time, on a timeout or on an error of this test
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    out = ''.join(lines)
    if waiting is not None:
        state = f'exited {ended}' if ended is not None else f'still running after {timeout} s'
        pytest.fail(f'tools/train.py {state} before it could be killed mid-epoch {epoch}: '
                    f'{waiting}\n{out[-3000:]}')
    assert proc.returncode == -signal.SIGKILL, out[-3000:]
    return out


def _last_iteration(work):
    """The last training iteration a running run has recorded in its scalars.json (0 if none; a
    line being written is not counted)."""
    last = 0
    for path in glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            for line in f:
                if line.endswith('\n') and '"loss"' in line:
                    last = max(last, json.loads(line)['step'])
    return last


def _losses(work):
    """{iteration: loss} from every run's scalars.json in ``work`` (later runs win)."""
    losses = {}
    for path in sorted(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec:
                    losses[rec['step']] = rec['loss']
    return losses


def _weights(path):
    return load_checkpoint_file(path)['state_dict']


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, python, digits_root):
    work = str(tmp_path_factory.mktemp('uninterrupted'))
    _train(python, work, _opts(digits_root))
    return work


def test_killed_mid_epoch_and_resumed_ends_as_uninterrupted(uninterrupted, tmp_path, python,
                                                            digits_root):
    work = str(tmp_path / 'killed')
    opts = _opts(digits_root)
    _train_and_kill(python, work, opts, epoch=3, batch=3)
    assert osp.basename(open(osp.join(work, 'last_checkpoint')).read().strip()) == 'epoch_2.pth'
    shutil.copytree(work, str(tmp_path / 'no_workers'))  # the same state, resumed differently
    out = _train(python, work, opts, resume='auto')
    assert 'resumed epoch: 2, iter: 12' in out, out[-3000:]

    expected, resumed = _losses(uninterrupted), _losses(work)
    assert sorted(expected) == list(range(1, 4 * ITERS_PER_EPOCH + 1))
    assert {s: resumed[s] for s in expected} == expected  # epochs 1-2 before, 3-4 after the kill
    diff = _max_diff(_weights(osp.join(uninterrupted, 'epoch_4.pth')),
                     _weights(osp.join(work, 'epoch_4.pth')))
    print(f'resumed vs uninterrupted: max |diff| of the final weights {diff:.3g}')
    assert diff <= 1e-6
    names = sorted(os.listdir(work))
    ckpts = [n for n in names if n.endswith('.pth')]  # max_keep_ckpts=1, one best
    assert len(ckpts) == 2 and 'epoch_4.pth' in ckpts and ckpts[0].startswith('best_'), names
    assert not [n for n in names if n.endswith('.tmp')], names

    # the augmentation does not depend on the workers: resume the same state with none
    other = str(tmp_path / 'no_workers')
    _train(python, other, _opts(digits_root, 0), resume=osp.join(other, 'epoch_2.pth'))
    assert {s: _losses(other)[s] for s in expected} == expected
    assert _max_diff(_weights(osp.join(uninterrupted, 'epoch_4.pth')),
                     _weights(osp.join(other, 'epoch_4.pth'))) <= 1e-6


def test_checkpoint_holds_rng_states_loadable_with_weights_only(uninterrupted):
    ckpt = load_checkpoint_file(osp.join(uninterrupted, 'epoch_4.pth'))  # weights_only=True
    state = ckpt['rng_state']
    assert set(state) == {'torch', 'torch_cuda', 'numpy', 'python'}
    before = get_rng_state()
    set_rng_state(state)
    draws = (torch.rand(3), np.random.rand(3))
    set_rng_state(state)
    assert torch.equal(draws[0], torch.rand(3)) and np.array_equal(draws[1], np.random.rand(3))
    set_rng_state(before)


class _RandomDataset(Dataset):
    """Each item draws from numpy, random and torch, as augmentations do."""

    def __len__(self):
        return 24

    def __getitem__(self, i):
        import random
        return torch.tensor([i, np.random.randint(1 << 30), random.randrange(1 << 30),
                             int(torch.randint(1 << 30, ()))])


def _epochs(num_workers, epochs, batch_size=4):
    from mmengine.dataset import DefaultSampler
    dataset = _RandomDataset()
    sampler = ReproducibleSampler(dataset, DefaultSampler(dataset, shuffle=True, seed=3), seed=3)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                        persistent_workers=num_workers > 0)
    out = {}
    for epoch in epochs:
        sampler.set_epoch(epoch)
        out[epoch] = torch.cat(list(loader))
    return out


def test_sampler_keys_augmentation_by_sample_not_by_worker():
    """Same draws per (epoch, sample) with 0, 1 or 2 persistent workers, starting at any epoch;
    different draws in different epochs; the main process's streams untouched."""
    state = get_rng_state()
    ref = _epochs(0, [0, 1, 2])  # in this process
    after = get_rng_state()
    assert torch.equal(after['numpy']['keys'], state['numpy']['keys'])
    assert after['python'] == state['python']
    assert not torch.equal(ref[1][:, 1:], ref[2][:, 1:])
    for got in (_epochs(1, [0, 1, 2]), _epochs(2, [0, 1, 2]), _epochs(2, [2]),
                _epochs(1, [1, 2], batch_size=3)):
        for epoch, rows in got.items():
            assert torch.equal(rows, ref[epoch]), epoch


class _Noisy(Dataset):
    """Inputs with numpy noise (an augmentation) for a toy regression."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        x = np.full(4, i / 10, dtype=np.float32) + np.random.randn(4).astype(np.float32)
        return dict(inputs=torch.from_numpy(x), data_samples=torch.tensor([float(i % 3)]))


def _iter_runner(work, max_iters, resume=False):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(4, 1))

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.net(inputs)
            return dict(loss=(out - data_samples).pow(2).mean()) if mode == 'loss' else out

    sampler = dict(type='ReproducibleSampler', sampler=dict(type='InfiniteSampler', shuffle=True))
    torch.manual_seed(0)  # the same initial weights (the model is built before the Runner seeds)
    return Runner(
        model=Toy(), work_dir=work, default_scope='mmpretrain',
        train_dataloader=dict(dataset=_Noisy(), sampler=sampler, batch_size=3, num_workers=1,
                              persistent_workers=True, collate_fn=dict(type='default_collate')),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        custom_hooks=[dict(type='ReproducibleRandomnessHook')],
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=3,
                                           by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        resume=resume, randomness=dict(seed=1), log_processor=dict(by_epoch=False),
        experiment_name=f'{osp.basename(work)}_{max_iters}_{resume}')


def test_iteration_based_resume_is_exact(tmp_path):
    """IterBasedTrainLoop resumed from an iteration checkpoint (dropout, noisy inputs, a
    persistent worker): the same weights at the end."""
    full, cut = str(tmp_path / 'full'), str(tmp_path / 'cut')
    _iter_runner(full, 9).train()
    _iter_runner(cut, 3).train()
    _iter_runner(cut, 9, resume=True).train()
    diff = _max_diff(_weights(osp.join(full, 'iter_9.pth')), _weights(osp.join(cut, 'iter_9.pth')))
    assert diff == 0, diff
