"""Randomness independent of when a run started: a resumed run ends as the uninterrupted one.

mmengine seeds the processes once, at start-up. A run resumed from a checkpoint therefore draws
different random numbers from then on (drop-path masks, mixup, augmentation), and data-loader
workers restart their random streams (with ``persistent_workers`` they otherwise carry them across
epochs). Two pieces make every random draw of training a function of *where* it happens instead:

* :class:`ReproducibleSampler` wraps the training sampler. Every index it yields carries a key
  ``(seed, epoch, position)``; the dataset's batch fetch (in the worker processes, or in the main
  process with ``num_workers=0``) seeds ``numpy.random``, ``random`` and torch's CPU generator from
  that key before the sample's pipeline runs, and restores the previous states afterwards. The
  augmentation of a sample depends on neither the number of workers nor their history. The
  position is the sample's place in the global order of a strided distributed sampler
  (``position * world_size + rank``), so mmengine's ``DefaultSampler`` and ``InfiniteSampler`` give
  every rank count the same augmentation of the same sample.
* :class:`ReproducibleRandomnessHook` seeds the main process (all torch devices, numpy, random)
  from ``(seed, iteration, rank)`` before every training iteration, whatever ran since the previous
  one (validation, a data-loader iterator drawing its base seed, a resume). It also stores the
  random states in each checkpoint (as tensors and plain ints, so ``weights_only=True`` loads them)
  and restores them on ``resume``, for code that runs between the resume and the first iteration;
  and it gives the samplers the seed of the run being resumed (mmengine built them before it read
  the checkpoint, with a new random seed when the config's ``randomness.seed`` is None).

Random numbers drawn in the model (MAE/FCMAE masks, diffusion timesteps and noise, VAE posterior
samples, label dropout, drop path) therefore differ from process to process of a distributed run:
on 8 GPUs every rank draws its own, not 8 copies of the same. Since the key holds nothing but the
seed, the iteration and the rank, a resumed run still draws what the uninterrupted run drew on the
same rank. These draws do depend on how a batch is split over processes: with drop path or random
masking on, 2 processes x 32 images do not reproduce 1 x 64 (the augmentation does, see above).

``seed`` is the config's ``randomness.seed`` in both settings of ``randomness.diff_rank_seed``.
With ``diff_rank_seed=True`` mmengine seeds each process with ``seed + rank`` at start-up and
reports that as ``runner.seed``; the hook and the samplers take the rank off again, so the rank
enters the per-iteration key once and the training draws are the same in both settings.
``diff_rank_seed`` then only changes what runs before the first iteration (e.g. the initial
weights of each process, which DDP replaces by rank 0's). On resume every rank restores the random
states rank 0 saved; the first iteration then seeds each rank with its own key.

Every training config of the package asks for both (``configs/_base_/default_runtime.py`` and
its train loader; :func:`make_randomness_resumable` makes the same change to a config of your
own)::

    default_hooks = dict(reproducibility=dict(type='ReproducibleRandomnessHook'))
    train_dataloader = dict(sampler=dict(type='ReproducibleSampler',
                                         sampler=dict(type='DefaultSampler', shuffle=True)))

Resuming is exact at epoch boundaries of ``EpochBasedTrainLoop`` and at any checkpoint of
``IterBasedTrainLoop`` (which skips the batches already trained on). mmengine's epoch loop
restarts an epoch from its first batch, so resuming it from an iteration checkpoint inside an
epoch is not exact; the hook says so when it happens.
"""
import random
from typing import Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import Sampler

from ..registry import HOOKS, MultiRegistry

__all__ = ['ReproducibleSampler', 'ReproducibleRandomnessHook', 'make_randomness_resumable',
           'get_rng_state', 'set_rng_state', 'seed_from_key', 'iteration_key']

DATA_SAMPLERS = MultiRegistry('DATA_SAMPLERS')
_MASK64 = (1 << 64) - 1


def _words(key: Sequence[int]) -> np.ndarray:
    """Four uint32 words mixed from the integers of ``key`` (numpy's SeedSequence)."""
    return np.random.SeedSequence([int(k) & _MASK64 for k in key]).generate_state(4)


def seed_from_key(key: Sequence[int], all_devices: bool = True) -> None:
    """Seed ``numpy.random``, ``random`` and torch from the integers of ``key``.

    Args:
        key: e.g. ``(seed, epoch, position)``; distinct keys give independent streams.
        all_devices: seed every torch device (``torch.manual_seed``); otherwise only the CPU
            generator (a data-loading transform runs on the CPU).
    """
    words = _words(key)
    np.random.seed(words)
    random.seed(int.from_bytes(words.tobytes(), 'little'))
    torch_seed = (int(words[0]) | (int(words[1]) << 32)) & ((1 << 63) - 1)
    if all_devices:
        torch.manual_seed(torch_seed)
    else:
        torch.default_generator.manual_seed(torch_seed)


def get_rng_state() -> dict:
    """The random states of this process as plain data (tensors, ints, floats, tuples).

    Returns:
        dict with ``torch`` (uint8 tensor), ``torch_cuda`` (list of uint8 tensors, one per
        device; empty without CUDA), ``numpy`` (``keys``: int64 tensor (624,), ``pos``,
        ``has_gauss``, ``cached_gaussian``) and ``python`` (``random.getstate()``: a tuple of
        ints).
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    assert kind == 'MT19937', kind
    return dict(
        torch=torch.get_rng_state(),
        torch_cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        numpy=dict(keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                   has_gauss=int(has_gauss), cached_gaussian=float(cached)),
        python=random.getstate())


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state['torch'])
    if state['torch_cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['torch_cuda'][:torch.cuda.device_count()])
    np_state = state['numpy']
    np.random.set_state(('MT19937', np_state['keys'].numpy().astype(np.uint32), np_state['pos'],
                         np_state['has_gauss'], np_state['cached_gaussian']))
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))


def _get_host_rng() -> tuple:
    return np.random.get_state(), random.getstate(), torch.get_rng_state()


def _set_host_rng(state: tuple) -> None:
    np_state, py_state, torch_state = state
    np.random.set_state(np_state)
    random.setstate(py_state)
    torch.set_rng_state(torch_state)


class _KeyedIndex(int):
    """A dataset index carrying ``key``, the integers its sample's randomness is seeded from."""

    def __new__(cls, index: int, key: Tuple[int, ...]):
        obj = super().__new__(cls, index)
        obj.key = key
        return obj

    def __getnewargs__(self):  # pickled through the workers' index queues
        return int(self), self.key


class _KeyedFetch:
    """Installed as ``dataset.__getitems__``: torch's map-style fetcher calls it with the indices
    of one batch, in the worker (or the main process) that loads the batch.

    A keyed sample's pipeline runs with numpy's, Python's and torch's CPU randomness seeded from
    its key; the states from before are restored once after the batch's keyed samples (and before
    an unkeyed one, which draws from them as without this fetch). Saving and restoring numpy's
    state costs ~70 us, so it is done per batch, not per sample."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __call__(self, indices: Sequence[int]) -> list:
        samples, saved = [], None
        try:
            for index in indices:
                key = getattr(index, 'key', None)
                if key is None:
                    if saved is not None:
                        _set_host_rng(saved)
                        saved = None
                    samples.append(self.dataset[index])
                else:
                    if saved is None:
                        saved = _get_host_rng()
                    seed_from_key(key, all_devices=False)
                    samples.append(self.dataset[int(index)])
        finally:
            if saved is not None:
                _set_host_rng(saved)
        return samples


@DATA_SAMPLERS.register_module()
class ReproducibleSampler(Sampler):
    """A sampler whose samples are augmented the same way whenever and wherever they are loaded.

    It yields the indices of ``sampler`` unchanged in value and order; each carries the key
    ``(seed, epoch, position * world_size + rank)`` that the dataset's batch fetch seeds the
    sample's randomness from (see the module docstring). ``epoch`` is the wrapped sampler's
    (``set_epoch`` is forwarded); ``rank``/``world_size`` are its own (mmengine's samplers) or the
    process group's.

    Args:
        dataset: The dataset (mmengine passes it). Its ``__getitems__`` is set to the keyed fetch.
        sampler: The sampler to wrap: a config (built with the same ``dataset`` and ``seed``) or
            an instance.
        seed: Key seed (mmengine passes the run's seed). None: a random one, the same on every
            rank; :class:`ReproducibleRandomnessHook` replaces it by the run's seed.
    """

    def __init__(self, dataset, sampler: Union[dict, Sampler], seed: Optional[int] = None):
        if isinstance(sampler, dict):
            from mmengine.registry import DATA_SAMPLERS as MM_DATA_SAMPLERS
            sampler = MM_DATA_SAMPLERS.build(sampler, default_args=dict(dataset=dataset, seed=seed))
        if isinstance(sampler, ReproducibleSampler):
            raise TypeError('ReproducibleSampler wraps another sampler, not a ReproducibleSampler')
        self.sampler = sampler
        self.dataset = dataset
        self.seed = sync_random_seed() if seed is None else int(seed)
        self._install_keyed_fetch(dataset)

    @staticmethod
    def _install_keyed_fetch(dataset) -> None:
        if not isinstance(vars(dataset).get('__getitems__'), _KeyedFetch):
            dataset.__getitems__ = _KeyedFetch(dataset)

    @property
    def epoch(self) -> int:
        return getattr(self.sampler, 'epoch', 0)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[_KeyedIndex]:
        rank, world_size = get_dist_info()
        rank = getattr(self.sampler, 'rank', rank)
        world_size = getattr(self.sampler, 'world_size', world_size)
        seed, epoch = self.seed, self.epoch
        for position, index in enumerate(self.sampler):
            yield _KeyedIndex(index, (seed, epoch, position * world_size + rank))

    def __len__(self) -> int:
        return len(self.sampler)


def _run_seed(runner) -> int:
    """The config's ``randomness.seed`` (or the random one mmengine drew for None): ``runner.seed``
    without the rank that mmengine adds to it when ``randomness.diff_rank_seed`` is True."""
    randomness = getattr(runner, '_randomness_cfg', None) or {}
    if randomness.get('diff_rank_seed', False):
        return runner.seed - get_dist_info()[0]
    return runner.seed


def iteration_key(seed: int, iteration: int, rank: int) -> Tuple[int, ...]:
    """The key :class:`ReproducibleRandomnessHook` seeds process ``rank`` from before training
    iteration ``iteration`` (see :func:`seed_from_key`).

    numpy's SeedSequence pads a key shorter than its pool with zeros, so rank 0 draws what the
    former rank-less key ``(seed, iteration)`` drew: a single-process run is unchanged."""
    return (int(seed), int(iteration), int(rank))


def _train_sampler(loader) -> Optional[ReproducibleSampler]:
    for sampler in (getattr(loader, 'sampler', None),
                    getattr(getattr(loader, 'batch_sampler', None), 'sampler', None)):
        if isinstance(sampler, ReproducibleSampler):
            return sampler
    return None


@HOOKS.register_module()
class ReproducibleRandomnessHook(Hook):
    """Seed each process per iteration; keep random states and the sampler seed across resumes.

    Before every training iteration each process is seeded from ``(seed, iteration, rank)``
    (:func:`iteration_key`), so the ranks of a distributed run draw different random numbers in the
    model (masks, noise, timesteps, drop path), and a resumed run draws the same numbers as the
    uninterrupted one. ``seed`` is the config's ``randomness.seed`` whether or not
    ``randomness.diff_rank_seed`` is set (mmengine's ``runner.seed`` is ``seed + rank`` when it is;
    the hook subtracts the rank, so it is counted once). See the module docstring.

    Use it together with :class:`ReproducibleSampler` as the training sampler (``tools/train.py``
    adds both); without it the hook warns that the augmentation randomness of the data-loader
    workers is not covered.
    """

    priority = 'VERY_HIGH'  # seed before any other hook of an iteration runs

    def before_train(self, runner) -> None:
        loader = runner.train_loop.dataloader
        sampler = _train_sampler(loader)
        if sampler is None:
            runner.logger.warning(
                'ReproducibleRandomnessHook: the training sampler is not a ReproducibleSampler, '
                'so data augmentation in the data loader is not reproducible across a resume; '
                "set train_dataloader.sampler=dict(type='ReproducibleSampler', sampler=...).")
        else:
            # the run's seed before any per-rank offset: the same keys on every rank, for any
            # number of ranks (each sample's position in the global order tells them apart)
            sampler.seed = _run_seed(runner)
            inner = sampler.sampler
            if hasattr(inner, 'seed') and hasattr(inner, 'set_epoch'):
                # the seed mmengine builds samplers with: the same on every rank
                inner.seed = _run_seed(runner)
        if (isinstance(runner.train_loop, EpochBasedTrainLoop) and runner.iter > 0
                and runner.iter != runner.epoch * len(loader)):
            runner.logger.warning(
                f'Resumed at iteration {runner.iter}, inside epoch {runner.epoch + 1}: mmengine\'s '
                'EpochBasedTrainLoop restarts that epoch from its first batch, so this run will '
                'not match an uninterrupted one. Resume from an epoch checkpoint for that.')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        seed_from_key(iteration_key(_run_seed(runner), runner.iter, get_dist_info()[0]))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = get_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if getattr(runner, '_resume', False) and 'rng_state' in checkpoint:
            set_rng_state(checkpoint['rng_state'])


def make_randomness_resumable(cfg: Config) -> Config:
    """Add :class:`ReproducibleRandomnessHook` and wrap the training sampler in
    :class:`ReproducibleSampler` (each once; a config that has them already is left as it is)."""
    loader = cfg.get('train_dataloader')
    if not isinstance(loader, dict) or cfg.get('train_cfg') is None:
        return cfg
    sampler = loader.get('sampler')
    if isinstance(sampler, dict) and sampler.get('type') != 'ReproducibleSampler':
        loader['sampler'] = ConfigDict(type='ReproducibleSampler', sampler=sampler)
    hooks = list(cfg.get('custom_hooks') or []) + list((cfg.get('default_hooks') or {}).values())
    if not any(isinstance(h, dict) and h.get('type') == 'ReproducibleRandomnessHook'
               for h in hooks):
        cfg.setdefault('default_hooks', ConfigDict())
        cfg.default_hooks['reproducibility'] = ConfigDict(type='ReproducibleRandomnessHook')
    return cfg
