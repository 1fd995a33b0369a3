"""A run that goes bad stops and says so (NonFiniteCheckHook), and never saves NaN weights or a
"best" checkpoint from a NaN metric (NonFiniteCheckHook and AtomicCheckpointHook)."""
import glob
import os.path as osp
import re
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from torch.utils.data import Dataset

import visionllama_mm  # noqa: F401  (registers the hooks)
from visionllama_mm.compat import load_checkpoint_file
from visionllama_mm.engine import AtomicCheckpointHook, NonFiniteCheckHook
from visionllama_mm.engine.hooks import check_finite_checkpoint
from ..conftest import run_python

QUICKSTART = 'configs/quickstart/visionllama-tiny-p4_1xb64-20e_digits.py'
NAN = float('nan')


class _InfGrad(torch.autograd.Function):
    """Identity whose gradient is inf: a finite loss with a non-finite gradient norm."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float('inf'))


class _Toy(BaseModel):
    """``data_samples`` (B, 2): the target, and a term added to the loss *without* gradient to the
    weights (NaN there makes the loss NaN and leaves the step finite); ``inf_grad`` samples give a
    finite loss with an inf gradient."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        if mode != 'loss':
            return out
        if bool(inputs[:, 1].eq(-1).any()):
            out = _InfGrad.apply(out)
        loss = (out[:, 0] - data_samples[:, 0]).pow(2).mean() + data_samples[:, 1].sum()
        return dict(loss=loss, acc=torch.tensor(1.0))


class _Data(Dataset):

    def __init__(self, nan=(), inf_grad=()):
        self.nan, self.inf_grad = set(nan), set(inf_grad)

    def __len__(self):
        return 8

    def __getitem__(self, i):
        x = torch.tensor([0.1, -1. if i in self.inf_grad else 0.2, 0.3, 0.4])
        return dict(inputs=x, data_samples=torch.tensor([1.0, NAN if i in self.nan else 0.0]))


class _Poison(Hook):
    """Sets the weights to NaN after iteration ``at`` (before the checks and the checkpoint)."""
    priority = 'ABOVE_NORMAL'

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            runner.model.linear.weight.data.fill_(NAN)


def _runner(work, data, by_epoch=False, check=dict(type='NonFiniteCheckHook'),
            checkpoint='CheckpointHook', clip_grad=None, custom_hooks=None):
    default_hooks = dict(
        checkpoint=dict(type=checkpoint, by_epoch=by_epoch, interval=2, max_keep_ckpts=1),
        logger=dict(type='LoggerHook', interval=1))
    if check is not None:
        default_hooks['nonfinite_check'] = check
    train_cfg = dict(by_epoch=True, max_epochs=2) if by_epoch else dict(by_epoch=False,
                                                                        max_iters=8)
    return Runner(
        model=_Toy(), work_dir=str(work), default_scope='mmpretrain',
        train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=2 if by_epoch else 1,
                              collate_fn=dict(type='default_collate')),
        train_cfg=train_cfg, log_processor=dict(by_epoch=by_epoch),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01), clip_grad=clip_grad),
        default_hooks=default_hooks, custom_hooks=custom_hooks, randomness=dict(seed=0),
        experiment_name=f'{osp.basename(str(work))}_{id(data)}')


def _pths(work):
    return sorted(osp.basename(p) for p in glob.glob(osp.join(str(work), '*.pth')))


def test_nan_loss_stops_at_the_first_bad_iteration(tmp_path):
    with pytest.raises(FloatingPointError) as err:
        _runner(tmp_path, _Data(nan=[2])).train()  # sample 2 = iteration 3
    msg = str(err.value)
    assert msg.startswith('NonFiniteCheckHook: training diverged at iteration 3 of 8: '
                          'non-finite loss terms loss=nan (1 consecutive bad iteration(s), '
                          'patience=1); learning rate lr=0.01; the last checkpoint written is '
                          f'{tmp_path / "iter_2.pth"}. Lower the learning rate'), msg
    assert 'acc=' not in msg and 'check the data for inf/NaN pixels' in msg
    assert _pths(tmp_path) == ['iter_2.pth']


def test_epoch_based_message_names_epoch_and_batch(tmp_path):
    with pytest.raises(FloatingPointError,
                       match=re.escape('at iteration 3 (epoch 1, batch 3/4): non-finite loss terms '
                                       'loss=nan')):
        _runner(tmp_path, _Data(nan=[4]), by_epoch=True).train()  # the third batch of 2


def test_patience_counts_consecutive_bad_iterations(tmp_path):
    check = dict(type='NonFiniteCheckHook', patience=2)
    _runner(tmp_path / 'one', _Data(nan=[2]), check=check).train()  # one bad iteration: goes on
    assert _pths(tmp_path / 'one') == ['iter_8.pth']
    with pytest.raises(FloatingPointError, match=re.escape(
            'at iteration 4 of 8: non-finite loss terms loss=nan (2 consecutive bad iteration(s), '
            'patience=2)')):
        _runner(tmp_path / 'two', _Data(nan=[2, 3]), check=check).train()
    with pytest.raises(ValueError, match='NonFiniteCheckHook: patience must be an int >= 1, got 0'):
        NonFiniteCheckHook(patience=0)


def test_inf_gradient_norm_with_a_finite_loss_stops(tmp_path):
    with pytest.raises(FloatingPointError, match=re.escape(
            'at iteration 2 of 8: non-finite gradient norm grad_norm=inf (1 consecutive')):
        _runner(tmp_path, _Data(inf_grad=[1]), clip_grad=dict(max_norm=1.0)).train()


def _fake_runner(tmp_path, wrapper, hooks=()):
    hub = MessageHub(f'nonfinite_{id(wrapper)}')  # not made the current instance
    hub.update_scalar('train/grad_norm', float('inf'))
    return SimpleNamespace(message_hub=hub, optim_wrapper=wrapper, hooks=list(hooks),
                           work_dir=str(tmp_path), _train_loop=None,
                           logger=SimpleNamespace(warning=lambda msg: None))


def _amp_like(loss_scale):
    """What the hook reads of mmengine's AmpOptimWrapper (its GradScaler needs CUDA)."""
    wrapper = OptimWrapper(torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1))
    wrapper.loss_scaler = torch.amp.GradScaler('cpu')
    wrapper._scale_update_param = None if loss_scale == 'dynamic' else loss_scale
    return wrapper


@pytest.mark.parametrize('kind, fails', [('plain', True), ('dynamic', False), ('static', True),
                                         ('accumulating', False)])
def test_inf_gradient_norm_and_the_loss_scaler(tmp_path, kind, fails):
    """A dynamic loss scaler skips an inf step and lowers its scale: not a failure. Under a static
    scale (or none) it is; while accumulating, the recorded norm is an earlier step's."""
    if kind in ('dynamic', 'static'):
        wrapper = _amp_like('dynamic' if kind == 'dynamic' else 1.0)
    else:
        wrapper = OptimWrapper(torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1),
                               accumulative_counts=4 if kind == 'accumulating' else 1)
        if kind == 'accumulating':
            wrapper._inner_count = 1  # one of four backward passes done: no step this iteration
    hook = NonFiniteCheckHook()
    runner = _fake_runner(tmp_path, wrapper)
    if fails:
        with pytest.raises(FloatingPointError, match=re.escape(
                'non-finite gradient norm grad_norm=inf (1 consecutive bad iteration(s), '
                'patience=1); learning rate lr=0.1; no checkpoint was written yet')):
            hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(1.0)))
    else:
        hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(1.0)))
    # a non-finite loss is a failure under any loss scaler
    with pytest.raises(FloatingPointError, match='non-finite loss terms loss=inf'):
        hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(float('inf'))))


@pytest.mark.parametrize('checkpoint, check', [('CheckpointHook', dict(type='NonFiniteCheckHook')),
                                               ('AtomicCheckpointHook', None)],
                         ids=['stock_with_hook', 'atomic_alone'])
def test_nan_weights_are_never_saved(tmp_path, checkpoint, check):
    """Weights NaN after iteration 4 with a finite loss: the checkpoint of iteration 4 is refused
    before anything is written or deleted (the stock hook deletes the old one first)."""
    owner = 'NonFiniteCheckHook' if check else 'AtomicCheckpointHook'
    with pytest.raises(FloatingPointError) as err:
        _runner(tmp_path, _Data(), checkpoint=checkpoint, check=check,
                custom_hooks=[_Poison(at=4)]).train()
    assert str(err.value).startswith(
        f"{owner}: not writing the checkpoint of iteration 4: 1 of 2 floating-point tensors hold "
        f"NaN/inf (state_dict['linear.weight']). The weights diverged; the last checkpoint "
        f"written is {tmp_path / 'iter_2.pth'}."), str(err.value)
    assert _pths(tmp_path) == ['iter_2.pth']
    assert not glob.glob(osp.join(str(tmp_path), '.*.tmp'))
    state = load_checkpoint_file(str(tmp_path / 'iter_2.pth'))['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values())


def test_nan_ema_tensors_are_named(tmp_path):
    checkpoint = dict(meta=dict(epoch=3, iter=30),
                      state_dict={'w': torch.ones(2), 'steps': torch.tensor(3)},
                      ema_state_dict={'module.w': torch.tensor([1., NAN])})
    runner = SimpleNamespace(work_dir=str(tmp_path), _train_loop=None)
    with pytest.raises(FloatingPointError, match=re.escape(
            "not writing the checkpoint of iteration 30: 1 of 2 floating-point tensors hold "
            "NaN/inf (ema_state_dict['module.w']). The weights diverged; no checkpoint was "
            "written yet")):
        check_finite_checkpoint(runner, checkpoint)
    checkpoint['ema_state_dict']['module.w'] = torch.ones(2)
    check_finite_checkpoint(runner, checkpoint)  # finite: nothing raised


@pytest.mark.parametrize('value', [NAN, float('inf')])
def test_a_non_finite_metric_never_becomes_best(tmp_path, value):
    """mmengine's comparison skips a NaN silently and takes an inf as the best; both stop."""
    runner = SimpleNamespace(work_dir=str(tmp_path), _train_loop=None)
    stock = CheckpointHook(save_best='auto')
    runner.hooks = [NonFiniteCheckHook(), stock]
    expected = (f'the validation after an unknown iteration gave a non-finite metric '
                f'(accuracy/top1={value}); it cannot become the best checkpoint (save_best)')
    with pytest.raises(FloatingPointError, match=re.escape('NonFiniteCheckHook: ' + expected)):
        runner.hooks[0].after_val_epoch(runner, {'accuracy/top1': value, 'loss': 1.0})
    runner.hooks[0].after_val_epoch(runner, {'accuracy/top1': 5.0, 'other': value})  # not best key
    atomic = AtomicCheckpointHook(save_best='accuracy/top1', rule='greater')
    runner.hooks = [atomic]  # our tools' hook without NonFiniteCheckHook
    with pytest.raises(FloatingPointError, match=re.escape('AtomicCheckpointHook: ' + expected)):
        atomic._save_best_checkpoint(runner, {'accuracy/top1': value})
    assert not glob.glob(osp.join(str(tmp_path), '*'))


def _digits_opts(digits_root, *extra):
    opts = ['--cfg-options']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={digits_root}',
                 f'{split}_dataloader.num_workers=0',
                 f'{split}_dataloader.persistent_workers=False']
    return opts + list(extra)


@pytest.mark.parametrize('tool, option', [
    ('tools/train.py', 'optim_wrapper.optimizer.lr=1000.0'),
    ('mmpretrain', 'data_preprocessor.std=[0.0,0.0,0.0]'),  # inf/NaN pixels
], ids=['ours_lr1000', 'stock_mmpretrain_nan_pixels'])
def test_quickstart_that_diverges_stops(tmp_path, python, digits_root, tool, option):
    """The issue's runs: lr=1000 (our tools/train.py) and inf/NaN pixels (mmpretrain's own
    tools/train.py): exit != 0 at the first bad iteration, no checkpoint written."""
    if tool == 'mmpretrain':
        import mmpretrain
        tool = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'train.py')
    proc = run_python([python, tool, QUICKSTART, '--work-dir', str(tmp_path),
                       *_digits_opts(digits_root, option)])
    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]
    found = re.search(r'FloatingPointError: NonFiniteCheckHook: training diverged at iteration '
                      r'(\d+) \(epoch 1, batch \d+/23\): non-finite (loss terms loss|gradient norm '
                      r'grad_norm)=(nan|inf)', out)
    assert found and int(found.group(1)) <= 3, out[-3000:]
    assert 'learning rate lr=' in out and 'no checkpoint was written yet' in out
    assert _pths(tmp_path) == []


@pytest.mark.parametrize('toolbox', ['mmpretrain', 'mmseg', 'mmdet'])
def test_the_hook_is_in_every_toolbox_registry(toolbox):
    """Every config enables it as ``default_hooks.nonfinite_check`` (asserted for each config in
    tests/test_configs.py); the stock tools of all three toolboxes find it."""
    import importlib
    assert importlib.import_module(f'{toolbox}.registry').HOOKS.get('NonFiniteCheckHook') \
        is NonFiniteCheckHook
