"""ReproducibleRandomnessHook seeds every process of a distributed run from (seed, iteration, rank):
the ranks draw different numbers at the same iteration (masks, noise, timesteps, drop path), and
the same (seed, iteration, rank) draws the same numbers again, which keeps a resume exact. The
rank is faked with a patched ``get_dist_info`` (a real process group is not needed for the hook)."""
import random
import types

import numpy as np
import pytest
import torch

import visionllama_mm.engine.reproducibility as reproducibility
from visionllama_mm.engine.reproducibility import (ReproducibleRandomnessHook, ReproducibleSampler,
                                                   get_rng_state, seed_from_key, set_rng_state)


@pytest.fixture(autouse=True)
def _keep_rng_state():
    """The hook reseeds this process's generators; give the other tests theirs back."""
    state = get_rng_state()
    yield
    set_rng_state(state)


def _fake_rank(monkeypatch, rank, world_size=2):
    monkeypatch.setattr(reproducibility, 'get_dist_info', lambda: (rank, world_size))


def _runner(seed, iteration, diff_rank_seed=False, rank=0):
    """What the hook reads of a Runner; ``seed`` as mmengine reports it (``seed + rank`` with
    ``diff_rank_seed``)."""
    return types.SimpleNamespace(seed=seed + (rank if diff_rank_seed else 0), iter=iteration,
                                 _randomness_cfg=dict(seed=seed, diff_rank_seed=diff_rank_seed))


def _draws(monkeypatch, rank, iteration, seed=0, diff_rank_seed=False):
    """torch, numpy and random draws of process ``rank`` right after the hook's seeding."""
    _fake_rank(monkeypatch, rank)
    torch.rand(100), np.random.rand(100), random.random()  # whatever ran before the iteration
    ReproducibleRandomnessHook().before_train_iter(
        _runner(seed, iteration, diff_rank_seed, rank), batch_idx=0)
    return torch.rand(3), np.random.rand(3), random.random()


def _same(a, b):
    return (torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2])


def _all_differ(a, b):
    return (not torch.equal(a[0], b[0]) and not np.array_equal(a[1], b[1]) and a[2] != b[2])


def test_ranks_draw_different_numbers_and_repeat_them_for_the_same_key(monkeypatch):
    rank0, rank1 = _draws(monkeypatch, 0, 5), _draws(monkeypatch, 1, 5)
    print(f'iteration 5, torch.rand(3): rank 0 {rank0[0].tolist()}, rank 1 {rank1[0].tolist()}')
    assert _all_differ(rank0, rank1)
    # the key holds only (seed, iteration, rank): a resumed run draws the same numbers again
    assert _same(_draws(monkeypatch, 1, 5), rank1) and _same(_draws(monkeypatch, 0, 5), rank0)
    assert _all_differ(_draws(monkeypatch, 1, 6), rank1)
    assert _all_differ(_draws(monkeypatch, 1, 5, seed=1), rank1)
    # eight ranks, eight different draws (before: 8 copies of one)
    firsts = {tuple(_draws(monkeypatch, r, 5)[0].tolist()) for r in range(8)}
    assert len(firsts) == 8


def test_diff_rank_seed_counts_the_rank_once(monkeypatch):
    """mmengine reports ``runner.seed = seed + rank`` with ``diff_rank_seed=True``; the hook takes
    the rank off, so the rank enters the key once and both settings draw the same numbers,
    different on each rank."""
    for rank in (0, 1, 3):
        assert _same(_draws(monkeypatch, rank, 7, seed=4, diff_rank_seed=True),
                     _draws(monkeypatch, rank, 7, seed=4))
    assert _all_differ(_draws(monkeypatch, 0, 7, seed=4, diff_rank_seed=True),
                       _draws(monkeypatch, 1, 7, seed=4, diff_rank_seed=True))


def test_runner_seed_with_diff_rank_seed_is_the_config_seed_plus_rank(monkeypatch, tmp_path):
    """The semantics the hook undoes, from mmengine's Runner itself (built as rank 1 of 2)."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Tiny(BaseModel):

        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return self.linear(inputs)

    monkeypatch.setattr('mmengine.runner.utils.get_rank', lambda: 1)
    runner = Runner(model=Tiny(), work_dir=str(tmp_path),
                    randomness=dict(seed=4, diff_rank_seed=True),
                    experiment_name='rank_seeds_diff_rank_seed',
                    # a Runner makes its scope the current one: leave mmpretrain's, which the
                    # stock-registry tests that run later in this process expect
                    default_scope='mmpretrain')
    assert runner.seed == 5 and runner.iter == 0
    _fake_rank(monkeypatch, 1)
    ReproducibleRandomnessHook().before_train_iter(runner, batch_idx=0)
    draws = torch.rand(3), np.random.rand(3), random.random()
    assert _same(draws, _draws(monkeypatch, 1, 0, seed=4))  # as without diff_rank_seed


def test_rank_zero_draws_as_the_former_rank_less_key(monkeypatch):
    """A single-process run is unchanged: rank 0's (seed, iteration, 0) seeds as (seed, iteration)
    did, also for a seed above 2**32 (one drawn by mmengine is below 2**31)."""
    for seed in (0, 2, 3 << 40):
        hook = _draws(monkeypatch, 0, 5, seed=seed)
        seed_from_key((seed, 5))
        assert _same(hook, (torch.rand(3), np.random.rand(3), random.random()))


class _Items(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return i


def test_samplers_get_the_config_seed_with_diff_rank_seed(monkeypatch):
    """Augmentation keys stay (seed, epoch, global position) on every rank: rank 1 of a
    ``diff_rank_seed`` run keys its samples with the config's seed, not seed + 1, so any number of
    processes augments a sample the same way."""
    from mmengine.dataset import DefaultSampler
    _fake_rank(monkeypatch, 1)
    dataset = _Items()
    sampler = ReproducibleSampler(dataset, DefaultSampler(dataset, shuffle=True, seed=123), seed=9)
    runner = _runner(4, 0, diff_rank_seed=True, rank=1)
    runner.train_loop = types.SimpleNamespace(dataloader=types.SimpleNamespace(sampler=sampler))
    runner.logger = None
    ReproducibleRandomnessHook().before_train(runner)
    assert sampler.seed == 4 and sampler.sampler.seed == 4
