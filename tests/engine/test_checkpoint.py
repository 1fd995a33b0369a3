"""A crash while a checkpoint is written leaves the previous one loadable and named by
``last_checkpoint`` (AtomicCheckpointHook); mmengine's CheckpointHook does not."""
import os
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.fileio import LocalBackend
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import visionllama_mm  # noqa: F401  (registers AtomicCheckpointHook)
from visionllama_mm.compat import load_checkpoint_file


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        return dict(loss=(out - data_samples).pow(2).mean()) if mode == 'loss' else out


class _Data(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((4, ), float(i)), data_samples=torch.tensor([1.0]))


def _runner(work, hook, max_epochs, resume=False):
    return Runner(
        model=_Toy(), work_dir=work, default_scope='mmpretrain',
        train_dataloader=dict(dataset=_Data(), sampler=dict(type='DefaultSampler', shuffle=True),
                              batch_size=4, collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type=hook, interval=1, max_keep_ckpts=1),
                           logger=dict(type='LoggerHook', interval=1)),
        resume=resume, randomness=dict(seed=0),
        experiment_name=f'{osp.basename(work)}_{hook}_{max_epochs}_{resume}')


class _Crash(Exception):
    pass


def _crash_on_third_save(monkeypatch, where):
    """Epochs 1 and 2 save normally; saving epoch 3 dies half-way, in torch.save or in the write."""
    calls = []
    if where == 'torch.save':
        real = torch.save

        def save(obj, f, *args, **kwargs):
            calls.append(f)
            if len(calls) == 3:
                f.write(b'PK\x03\x04 half a checkpoint')
                raise _Crash('killed in torch.save')
            return real(obj, f, *args, **kwargs)

        monkeypatch.setattr(torch, 'save', save)
    else:
        real = LocalBackend.put

        def put(self, obj, filepath):
            calls.append(filepath)
            if len(calls) == 3:
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                raise _Crash('killed while writing')
            return real(self, obj, filepath)

        monkeypatch.setattr(LocalBackend, 'put', put)


def _train_until_crash(tmp_path, monkeypatch, where, hook):
    """A 3-epoch run with ``hook`` that is killed while saving the third checkpoint."""
    work = str(tmp_path)
    _crash_on_third_save(monkeypatch, where)
    with pytest.raises(_Crash):
        _runner(work, hook, max_epochs=3).train()
    return work


def _last_checkpoint(work):
    with open(osp.join(work, 'last_checkpoint')) as f:
        return f.read().strip()


@pytest.mark.parametrize('where', ['torch.save', 'file write'])
def test_crash_while_saving_keeps_previous_checkpoint(tmp_path, monkeypatch, where):
    work = _train_until_crash(tmp_path, monkeypatch, where, 'AtomicCheckpointHook')
    last = _last_checkpoint(work)
    assert osp.basename(last) == 'epoch_2.pth'
    ckpt = load_checkpoint_file(last)  # weights_only=True
    assert ckpt['meta']['epoch'] == 2
    assert sorted(n for n in os.listdir(work) if n.endswith(('.pth', '.tmp'))) == ['epoch_2.pth']

    monkeypatch.undo()  # and the run resumes from it
    _runner(work, 'AtomicCheckpointHook', max_epochs=3, resume=True).train()
    assert osp.basename(_last_checkpoint(work)) == 'epoch_3.pth'
    assert sorted(n for n in os.listdir(work) if n.endswith('.pth')) == ['epoch_3.pth']


@pytest.mark.parametrize('where', ['torch.save', 'file write'])
def test_stock_checkpoint_hook_loses_the_checkpoint(tmp_path, monkeypatch, where):
    """What the hook fixes: the stock one deletes epoch_2.pth before writing epoch_3.pth."""
    work = _train_until_crash(tmp_path, monkeypatch, where, 'CheckpointHook')
    assert not osp.exists(osp.join(work, 'epoch_2.pth'))
    with pytest.raises(FileNotFoundError):  # last_checkpoint names the deleted file
        load_checkpoint_file(_last_checkpoint(work))
