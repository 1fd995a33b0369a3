"""tools/train.py and tools/test.py's config handling: CPU adaptation, stock-flag semantics."""
import os.path as osp
from argparse import Namespace

from mmengine.config import Config

import visionllama_mm  # noqa: F401
from visionllama_mm.engine.launch import adapt_to_device, merge_train_args, toolbox_of
from ..conftest import REPO


def _cfg(**kwargs):
    return Config(dict(default_scope='mmseg', **kwargs))


def test_adapt_to_cpu_replaces_syncbn_amp_and_ddp_settings():
    cfg = _cfg(
        launcher='pytorch',
        model=dict(type='EncoderDecoder', backbone=dict(norm_cfg=dict(type='SyncBN')),
                   decode_head=dict(norm_cfg=dict(type='SyncBN', requires_grad=True))),
        optim_wrapper=dict(type='AmpOptimWrapper', loss_scale='dynamic',
                           optimizer=dict(type='AdamW', lr=1e-4)),
        env_cfg=dict(dist_cfg=dict(backend='nccl')),
        train_dataloader=dict(pin_memory=True))
    adapt_to_device(cfg, cuda=False)
    assert cfg.model.backbone.norm_cfg.type == 'BN'
    assert cfg.model.decode_head.norm_cfg == dict(type='BN', requires_grad=True)
    assert cfg.optim_wrapper == dict(type='CPUBF16AmpOptimWrapper',
                                     optimizer=dict(type='AdamW', lr=1e-4))
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.train_dataloader.pin_memory is False


def test_adapt_is_noop_with_cuda():
    cfg = _cfg(model=dict(norm_cfg=dict(type='SyncBN')))
    adapt_to_device(cfg, cuda=True)
    assert cfg.model.norm_cfg.type == 'SyncBN'


def test_collate_fn_scope_is_stripped(tmp_path):
    # a collate_fn inherited through `pkg::` carries `_scope_`, which reaches default_collate()
    child = tmp_path / 'child.py'
    child.write_text("_base_ = ['mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py']\n")
    cfg = Config.fromfile(str(child))
    assert cfg.train_dataloader.collate_fn.get('_scope_') == 'mmpretrain'  # the trap
    adapt_to_device(cfg, cuda=True)  # a run-time change, logged (the stock tools keep it)
    assert '_scope_' not in cfg.train_dataloader.collate_fn


def test_toolbox_from_default_scope():
    assert toolbox_of(Config(dict(default_scope='mmdet'))) == 'mmdet'
    assert toolbox_of(Config(dict())) == 'mmpretrain'
    try:
        toolbox_of(Config(dict(default_scope='mmocr')))
    except ValueError as err:
        assert 'mmocr' in str(err)
    else:
        raise AssertionError('unknown scope accepted')


def test_no_validate_with_cfg_options_naming_val_keys():
    """``--no-validate --cfg-options val_dataloader.batch_size=4`` (a command line shared with a
    validating run) drops validation after the options are merged, instead of failing to merge
    into the removed ``val_dataloader``."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/quickstart/visionllama-tiny-p4_1xb64-20e_digits.py'))
    args = Namespace(config='x.py', launcher='none', work_dir=None, no_validate=True, amp=False,
                     resume=None, auto_scale_lr=False,
                     cfg_options={'val_dataloader.batch_size': 4, 'val_cfg.type': 'ValLoop'})
    merge_train_args(cfg, args)
    assert cfg.val_dataloader is None and cfg.val_cfg is None and cfg.val_evaluator is None


def test_run_time_changes_are_logged_in_one_line():
    """Everything adapt_to_device changes is named in one log line, in the order applied."""
    import logging

    from mmengine.logging import MMLogger
    cfg = _cfg(
        launcher='pytorch',
        model=dict(type='EncoderDecoder', backbone=dict(norm_cfg=dict(type='SyncBN'))),
        optim_wrapper=dict(type='AmpOptimWrapper', loss_scale='dynamic',
                           optimizer=dict(type='AdamW', lr=1e-4)),
        train_dataloader=dict(pin_memory=True,
                              collate_fn=dict(type='default_collate', _scope_='mmseg')))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        adapt_to_device(cfg, cuda=False)
        adapt_to_device(_cfg(launcher='none'), cuda=True)  # nothing to change: no line
    finally:
        logger.removeHandler(handler)
    lines = [r.getMessage() for r in records if '[visionllama_mm]' in r.getMessage()]
    assert lines == [
        '[visionllama_mm] run-time changes to the config: _scope_ dropped from the collate_fn of '
        'train_dataloader; no CUDA: distributed backend nccl -> gloo; no CUDA: DDP built with '
        'device_ids=None; no CUDA: SyncBN -> BN at model.backbone.norm_cfg; no CUDA: '
        'AmpOptimWrapper -> CPUBF16AmpOptimWrapper: training in bf16 autocast on CPU (not used '
        "on CPU: loss_scale='dynamic'); no CUDA: pin_memory off in train_dataloader"]
