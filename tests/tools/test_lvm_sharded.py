"""The sharded (FSDP) LVM path trains exactly as the unsharded model does.

A >= 1B LVM config (FlexibleRunner + FSDPStrategy + ``ShardedDataParallel``, with activation
checkpointing) runs 5 iterations through ``tools/dist_train.sh`` on 2 CPU processes (gloo) with
the decoder and data made tiny by ``--cfg-options``, in fp32 (no FSDP mixed precision), with
gradient accumulation over 2 micro-steps, weight decay and clipping at norm 1.0 active (the first
gradient norm is above 1), and a constant lr of 1e-2 so that every update moves the loss. The
same config then runs in one process through ``tools/train.py`` (no launcher: the plain Runner, no
sharding) with twice the batch per step.

Why the two runs see the same data. mmengine's ``DefaultSampler`` orders the windows once
(identically on every rank: the same seed and epoch), pads that order to a multiple of the world
size W, and gives rank r the positions r, r + W, r + 2W, ...; the dataloader cuts each rank's list
into batches of b. Step s of rank r is therefore positions {(s b + j) W + r : j < b}, and over the
ranks these are exactly positions s b W ... (s + 1) b W - 1: the batch of step s of a single process
with batch b W. The test does not rely on this argument alone: a hook records every rank's token
windows at every step and the test checks that the two ranks' windows together are the single
process's, step by step.

Why the losses are comparable. Each rank's loss is its batch's mean NLL (every window has the same
number of scored tokens), FSDP averages the gradients over the ranks, so the sharded model follows
the gradient of the mean of the two rank losses, and that mean is the single process's loss on the
union batch. Clipping uses the norm of the whole gradient (``ShardedDataParallel``), recorded at the
updates and compared too.
"""
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from ..conftest import REPO, free_port, run_tool

CONFIG = 'configs/lvm/lvm_llama-7b_8xb4-accum4-400kit_uvd.py'
CODES, VOCAB, CONTEXT = 48, 64, 32
PER_RANK, ITERS = 2, 5


class StepRecordHook(Hook):
    """Writes ``records_rank{r}.json`` to the work dir: per training iteration the local loss, the
    token windows of the local batch and, at updates, the gradient norm the optimizer clipped by.
    Named in the runs as ``default_hooks.record.type=tests.tools.test_lvm_sharded.StepRecordHook``
    (mmengine imports a dotted ``type``)."""

    priority = 'LOW'

    def __init__(self):
        self.records = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        record = dict(iter=runner.iter, loss=float(outputs['loss']),
                      rows=data_batch['inputs'].tolist())
        if runner.optim_wrapper.should_update():
            record['grad_norm'] = float(runner.message_hub.get_scalar('train/grad_norm').current())
        self.records.append(record)

    def after_train(self, runner):
        with open(osp.join(runner.work_dir, f'records_rank{get_rank()}.json'), 'w') as f:
            json.dump(self.records, f)


def _opts(data_root, batch_size, init):
    ids = [f'model.num_codes={CODES}', f'model.bos_id={CODES}', f'model.eos_id={CODES + 1}',
           f'model.pad_id={CODES + 2}']
    data = [f'train_dataloader.dataset.{k}={v}' for k, v in (
        ('data_root', data_root), ('context_length', CONTEXT), ('bos_id', CODES),
        ('eos_id', CODES + 1), ('vocab_size', VOCAB))]
    return [
        '--no-validate', '--cfg-options', 'model.backbone.arch=debug',
        f'model.backbone.vocab_size={VOCAB}', *ids, *data,
        f'train_dataloader.batch_size={batch_size}', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'strategy.model_wrapper.mixed_precision=None',  # fp32: a tight comparison
        'optim_wrapper.optimizer.lr=0.01', 'param_scheduler=None',
        'optim_wrapper.accumulative_counts=2',
        f'train_cfg.max_iters={ITERS}', 'default_hooks.checkpoint.interval=100',
        'default_hooks.logger.interval=1', 'randomness.seed=0', f'load_from={init}',
        'default_hooks.record.type=tests.tools.test_lvm_sharded.StepRecordHook']


@pytest.fixture(scope='module')
def shard(tmp_path_factory):
    from visionllama_mm.datasets.token_streams import write_token_shard
    rng = np.random.default_rng(0)
    sentences = [rng.integers(0, CODES, size=int(rng.integers(10, 30))) for _ in range(60)]
    root = str(tmp_path_factory.mktemp('lvm_tokens') / 'train')
    meta = write_token_shard(root, sentences, bos=CODES, eos=CODES + 1, pad=CODES + 2,
                             vocab_size=VOCAB, codebook=CODES, tokens_per_image=4)
    # whole global batches: no sampler padding repeats a window within the run
    assert (meta['num_tokens'] - 1) // CONTEXT >= 2 * PER_RANK * ITERS
    return root


@pytest.fixture(scope='module')
def init_weights(tmp_path_factory):
    """One random initialisation for both runs (FlexibleRunner builds the model later than the
    Runner, after other random draws, so the same seed alone gives other weights)."""
    import torch
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, CONFIG))
    model = cfg.model
    model.backbone.update(arch='debug', vocab_size=VOCAB)
    model.update(num_codes=CODES, bos_id=CODES, eos_id=CODES + 1, pad_id=CODES + 2)
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('lvm_init') / 'init.pth')
    torch.save(dict(state_dict=MODELS.build(model).state_dict()), path)
    return path


def _records(work_dir, rank):
    with open(osp.join(work_dir, f'records_rank{rank}.json')) as f:
        return json.load(f)


def test_sharded_losses_equal_unsharded(shard, init_weights, python, tmp_path):
    sharded, single = tmp_path / 'fsdp', tmp_path / 'single'
    out = run_tool(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(sharded),
                    *_opts(shard, PER_RANK, init_weights)], env=dict(PORT=str(free_port())))
    assert re.search(r'Iter\(train\) \[5/5\]', out), out[-3000:]
    dumped = open(sharded / osp.basename(CONFIG)).read()
    assert "type='ShardedDataParallel'" in dumped and "device_id='cpu'" in dumped
    out1 = run_tool([python, 'tools/train.py', CONFIG, '--work-dir', str(single),
                     *_opts(shard, 2 * PER_RANK, init_weights)])
    assert 'running unsharded on the Runner' in out1, out1[-3000:]

    ranks = [_records(sharded, 0), _records(sharded, 1)]
    ref = _records(single, 0)
    assert [len(r) for r in ranks] == [ITERS, ITERS] and len(ref) == ITERS
    rel_loss, rel_norm = [], []
    for step in range(ITERS):
        a, b, c = ranks[0][step], ranks[1][step], ref[step]
        assert len(a['rows']) == len(b['rows']) == PER_RANK
        assert sorted(a['rows'] + b['rows']) == sorted(c['rows']), f'step {step}: other windows'
        mean = (a['loss'] + b['loss']) / 2
        rel_loss.append(abs(mean - c['loss']) / abs(c['loss']))
        assert ('grad_norm' in a) == ('grad_norm' in c), step
        if 'grad_norm' in c:
            assert a['grad_norm'] == b['grad_norm']  # one global norm on every rank
            rel_norm.append(abs(a['grad_norm'] - c['grad_norm']) / c['grad_norm'])
    losses = [r['loss'] for r in ref]
    print(f'sharded vs unsharded over {ITERS} steps: losses {np.round(losses, 5).tolist()}, '
          f'max relative difference {max(rel_loss):.2e} (loss), {max(rel_norm):.2e} (grad norm '
          f'at {len(rel_norm)} updates)')
    # accumulation over 2 micro-steps and the final remainder: updates after iterations 1, 3, 4
    assert [r['iter'] for r in ref if 'grad_norm' in r] == [1, 3, 4]
    assert ref[1]['grad_norm'] > 1.0  # clipping is active
    assert abs(losses[-1] - losses[0]) > 1e-2  # the updates move the loss
    assert max(rel_loss) < 1e-5 and max(rel_norm) < 1e-5


def test_sharded_load_from_refuses_weights_that_do_not_fit(shard, init_weights, tmp_path):
    """FlexibleRunner loads with strict=False and mmengine ignores what did not fit;
    ShardedDataParallel names the keys instead of training from the initialisation."""
    import subprocess

    import torch
    state = torch.load(init_weights, weights_only=True)['state_dict']
    renamed = {k.replace('backbone.model.norm.', 'backbone.norm.'): v for k, v in state.items()}
    bad = str(tmp_path / 'renamed.pth')
    torch.save(dict(state_dict=renamed), bad)
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1', PORT=str(free_port()))
    proc = subprocess.run(['bash', 'tools/dist_train.sh', CONFIG, '1', '--work-dir',
                           str(tmp_path / 'w'), *_opts(shard, PER_RANK, bad)], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode != 0
    assert ('1 missing key(s) [backbone.model.norm.weight], 1 unexpected key(s) '
            '[backbone.norm.weight]') in proc.stdout, proc.stdout[-3000:]
