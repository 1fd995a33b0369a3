"""The LVM pre-training configs, one per decoder size of the official LLAMA_STANDARD_CONFIGS, with
the official recipe (the README's training example with EasyLM's defaults).

Every config builds at its real size on the meta device with exactly
``LLaMADecoder.num_params(size)`` parameters; the optimiser, precision, data, loop and checkpoint
fields are the recipe's; the LR schedule, stepped as mmengine steps it (once per iteration,
accumulating or not), gives every update u the official ``optax.warmup_cosine_decay_schedule``
value; the sizes below 1B use DDP and the others FSDP (FlexibleRunner, ``ShardedDataParallel``).
One config of each kind trains through tools/train.py (the DDP one in one process, the FSDP one on
2 CPU processes with tools/dist_train.sh) with the decoder and data made tiny by --cfg-options, and
tools/test.py evaluates the checkpoint in one process. The sharded run's equality with the
unsharded one is tests/tools/test_lvm_sharded.py.
"""
import glob
import math
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config

import visionllama_mm  # noqa: F401
from visionllama_mm.engine.launch import adapt_to_device, unshard_single_process
from visionllama_mm.models.backbones.llama import LLaMADecoder
from ..conftest import REPO, free_port, run_tool

SIZES = ('debug', '100m', '300m', '600m', '1b', '3b', '7b', '13b', '20b', '30b')
SHARDED = {'1b', '3b', '7b', '13b', '20b', '30b'}  # FSDP from 1B parameters up
WITH_CP = {'7b', '13b', '20b', '30b'}  # activations of 4 x 4096 tokens beyond ~60 GiB per GPU
NAME = re.compile(r'lvm_llama-(\w+?)_(\d+)xb(\d+)-accum4-400kit_uvd\.py')
CONFIGS = {NAME.fullmatch(osp.basename(p)).group(1): p
           for p in sorted(glob.glob(osp.join(REPO, 'configs/lvm/lvm_llama-*_uvd.py')))}

# the official schedule in updates u: 0 -> 1.5e-4 over 8000, cosine to 3e-5 at 288000 (from 0),
# then flat
PEAK, END, WARMUP, DECAY, ACCUM = 1.5e-4, 3e-5, 8000, 288000, 4

CODES, VOCAB, CONTEXT = 48, 64, 32  # the tiny runs


def official_lr(u: int) -> float:
    """optax.warmup_cosine_decay_schedule(0, 1.5e-4, 8000, 288000, 3e-5) at update ``u``."""
    if u < WARMUP:
        return PEAK * u / WARMUP
    if u >= DECAY:
        return END
    return END + (PEAK - END) * 0.5 * (1 + math.cos(math.pi * (u - WARMUP) / (DECAY - WARMUP)))


def _cfg(size):
    return Config.fromfile(CONFIGS[size])


def test_one_config_per_size_with_the_official_global_batch():
    assert sorted(CONFIGS, key=SIZES.index) == list(SIZES)
    for size, path in CONFIGS.items():
        gpus, per_gpu = map(int, NAME.fullmatch(osp.basename(path)).group(2, 3))
        assert gpus * per_gpu == 32, path  # 32 sequences of 4096 tokens per micro-step
        assert _cfg(size).train_dataloader.batch_size == per_gpu, path


@pytest.mark.parametrize('size', SIZES)
def test_builds_at_real_size_with_the_official_parameter_count(size):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = _cfg(size)
    assert cfg.model.backbone.arch == size and cfg.model.backbone.vocab_size == 8292
    assert cfg.model.backbone.get('with_cp', False) == (size in WITH_CP)
    with DefaultScope.overwrite_default_scope('mmpretrain'), torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == LLaMADecoder.num_params(size)
    assert model.backbone.with_cp == (size in WITH_CP)


@pytest.mark.parametrize('size', SIZES)
def test_recipe_fields(size):
    cfg = _cfg(size)
    optim = cfg.optim_wrapper
    assert optim.optimizer == dict(type='AdamW', lr=1.5e-4, betas=(0.9, 0.95), eps=1e-8,
                                   weight_decay=0.1)
    assert 'paramwise_cfg' not in optim and 'constructor' not in optim  # decay on everything
    assert optim.clip_grad == dict(max_norm=1.0) and optim.accumulative_counts == ACCUM
    if size in SHARDED:
        assert cfg.runner_type == 'FlexibleRunner'
        strategy = cfg.strategy
        assert strategy.type == 'FSDPStrategy' and strategy.state_dict_cfg == 'full'
        assert strategy.model_wrapper == dict(
            type='ShardedDataParallel', auto_wrap_policy='transformer_block_wrap_policy',
            mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32',
                                 buffer_dtype='float32'))
        assert optim.type == 'OptimWrapper'  # bf16 compute is FSDP's mixed precision
    else:
        assert cfg.runner_type == 'CheckedRunner' and 'strategy' not in cfg  # the Runner's DDP
        assert optim.type == 'AmpOptimWrapper' and optim.dtype == 'bfloat16'
        assert optim.loss_scale == 1.0  # bf16 without loss scaling, as the official run
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=400000, val_interval=10000)
    checkpoint = {k: v for k, v in cfg.default_hooks.checkpoint.items() if k != '_scope_'}
    assert checkpoint == dict(type='AtomicCheckpointHook', by_epoch=False, interval=1000,
                              max_keep_ckpts=1)
    assert cfg.model.loss_norm == 'row'  # EasyLM: mean per row, then over rows
    assert cfg.randomness.seed == 42  # EasyLM's default seed
    assert (cfg.model.num_codes, cfg.model.bos_id, cfg.model.eos_id) == (8192, 8192, 8193)
    for split, root in (('train', 'data/uvd/tokens'), ('val', 'data/uvd/val_tokens'),
                        ('test', 'data/uvd/val_tokens')):
        loader = cfg[f'{split}_dataloader']
        assert loader.dataset == dict(type='PackedTokenDataset', context_length=4096, bos_id=8192,
                                      eos_id=8193, vocab_size=8292, data_root=root)
        assert loader.collate_fn == dict(type='default_collate')
    assert cfg.val_evaluator == cfg.test_evaluator == dict(type='Perplexity')
    assert cfg.param_scheduler == _cfg('debug').param_scheduler  # one schedule for all sizes


def test_weight_decay_on_every_parameter():
    """No norm / embedding exclusion (EasyLM's decay mask excludes nothing): one group, every
    parameter, decay 0.1."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = _cfg('debug')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
        fp32 = {k: v for k, v in cfg.optim_wrapper.items()
                if k not in ('type', 'dtype', 'loss_scale')}
        optim = build_optim_wrapper(model, fp32)  # the constructor is what matters here
    groups = optim.optimizer.param_groups
    ids = {id(p) for g in groups for p in g['params']}
    assert ids == {id(p) for p in model.parameters()}
    assert all(g['weight_decay'] == 0.1 for g in groups)
    decayed = {n for n, p in model.named_parameters() if id(p) in ids}
    assert {'backbone.model.embed_tokens.weight', 'backbone.model.norm.weight',
            'backbone.model.layers.0.input_layernorm.weight'} <= decayed


def test_lr_schedule_gives_every_update_the_official_lr():
    """mmengine steps the schedulers after every iteration (ParamSchedulerHook.after_train_iter)
    and the optimizer at iterations 4u + 3: the lr of iteration 4u + 3 must be lr(u)."""
    from mmengine.registry import PARAM_SCHEDULERS
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=PEAK)
    schedulers = [PARAM_SCHEDULERS.build(dict(s), default_args=dict(optimizer=optimizer))
                  for s in _cfg('debug').param_scheduler]
    last = ACCUM * DECAY + ACCUM + 4
    lrs = np.empty(last)
    for i in range(last):
        lrs[i] = optimizer.param_groups[0]['lr']
        for scheduler in schedulers:
            scheduler.step()
    updates = np.arange(last // ACCUM)
    official = np.array([official_lr(int(u)) for u in updates])
    at_updates = lrs[ACCUM * updates + ACCUM - 1]
    # warm-up from ~0: 1.5e-12 (start factor 1e-8) for the official 0, which shifts the ramp by
    # at most 1.5e-12; exact from the peak on
    assert np.abs(at_updates - official).max() <= PEAK * 1e-8 * (1 + 1e-9)
    assert (np.abs(at_updates - official) / official.clip(min=END))[WARMUP:].max() < 1e-9
    assert lrs[:ACCUM].max() < 2e-12  # iterations 0-3: ~0, accumulation only before 3
    assert lrs[ACCUM * WARMUP + 3] == pytest.approx(PEAK, rel=1e-12)  # end of warm-up
    assert lrs[ACCUM * WARMUP + 2] < PEAK
    assert lrs[ACCUM * DECAY + 3] == pytest.approx(END, rel=1e-12)  # 4 x 288000 (+3)
    assert np.all(lrs[ACCUM * DECAY + 3:] == lrs[ACCUM * DECAY + 3])  # constant after
    # the 400K micro-steps stop at update 100K, before the cosine's end (as the official run)
    assert _cfg('debug').train_cfg.max_iters == ACCUM * 100000
    assert lrs[ACCUM * 100000 - 1] == pytest.approx(official_lr(99999), rel=1e-9)


def test_cpu_and_single_process_adaptation_of_the_sharded_config():
    """adapt_to_device on a machine without CUDA: gloo, FSDP on device_id='cpu' (torch's FSDP looks
    for an accelerator otherwise), FSDP's bf16 kept; unshard_single_process: one process runs the
    config on the plain Runner, FSDP's bf16 becoming AmpOptimWrapper(dtype=bfloat16)."""
    cfg = _cfg('7b')
    cfg.launcher = 'pytorch'
    unshard_single_process(cfg)
    assert cfg.runner_type == 'FlexibleRunner'  # distributed: left alone
    adapt_to_device(cfg, cuda=True)
    assert 'device_id' not in cfg.strategy.model_wrapper and cfg.env_cfg.dist_cfg.backend == 'nccl'
    adapt_to_device(cfg, cuda=False)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.strategy.model_wrapper.device_id == 'cpu'
    assert cfg.strategy.model_wrapper.type == 'ShardedDataParallel'
    assert cfg.strategy.model_wrapper.mixed_precision.param_dtype == 'bfloat16'
    assert 'model_wrapper_cfg' not in cfg and cfg.optim_wrapper.type == 'OptimWrapper'

    cfg = _cfg('7b')
    cfg.launcher = 'none'
    unshard_single_process(cfg)
    assert cfg.runner_type == 'CheckedRunner' and 'strategy' not in cfg
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
    cfg = _cfg('7b')
    cfg.merge_from_dict({'strategy.model_wrapper.mixed_precision': None})
    cfg.launcher = 'none'
    unshard_single_process(cfg)
    assert 'strategy' not in cfg and cfg.optim_wrapper.type == 'OptimWrapper'  # fp32 stays fp32
    cfg = _cfg('7b')
    cfg.merge_from_dict({'strategy.model_wrapper.mixed_precision.param_dtype': 'float32'})
    cfg.launcher = 'none'
    with pytest.raises(ValueError, match='param_dtype'):
        unshard_single_process(cfg)


# --------------------------------------------------------------------------- tiny real runs
@pytest.fixture(scope='module')
def shards(tmp_path_factory):
    from visionllama_mm.datasets.token_streams import write_token_shard
    rng = np.random.default_rng(0)
    roots = {}
    for split, n in (('train', 40), ('val', 12)):
        sentences = [rng.integers(0, CODES, size=int(rng.integers(10, 30))) for _ in range(n)]
        roots[split] = str(tmp_path_factory.mktemp('lvm_tokens') / split)
        write_token_shard(roots[split], sentences, bos=CODES, eos=CODES + 1, pad=CODES + 2,
                          vocab_size=VOCAB, codebook=CODES, tokens_per_image=4)
    return roots


def _tiny(shards, iters):
    opts = ['model.backbone.arch=debug', f'model.backbone.vocab_size={VOCAB}',
            f'model.num_codes={CODES}', f'model.bos_id={CODES}', f'model.eos_id={CODES + 1}',
            f'model.pad_id={CODES + 2}', f'train_cfg.max_iters={iters}',
            f'train_cfg.val_interval={iters}', f'default_hooks.checkpoint.interval={iters}',
            'default_hooks.logger.interval=1', 'randomness.seed=0']
    for split, root in (('train', shards['train']), ('val', shards['val']),
                        ('test', shards['val'])):
        opts += [f'{split}_dataloader.dataset.{k}={v}' for k, v in (
            ('data_root', root), ('context_length', CONTEXT), ('bos_id', CODES),
            ('eos_id', CODES + 1), ('vocab_size', VOCAB))]
        opts += [f'{split}_dataloader.batch_size=2', f'{split}_dataloader.num_workers=0',
                 f'{split}_dataloader.persistent_workers=False']
    return ['--cfg-options', *opts]


def _ppl(out):
    return float(re.findall(r'ppl/token: ([\d.]+)', out)[-1])


def test_ddp_config_trains_and_tests(shards, python, tmp_path):
    """LVM-300M's config in one process; the logged lr is the schedule's, iteration by
    iteration (~0 through the first update, then the warm-up slope)."""
    config = CONFIGS['300m']
    opts = _tiny(shards, 6)
    out = run_tool([python, 'tools/train.py', config, '--work-dir', str(tmp_path), *opts])
    assert 'CPUBF16AmpOptimWrapper' in out, out[-3000:]  # bf16 AMP on the CPU
    lrs = [float(v) for v in re.findall(r'Iter\(train\) \[\s*\d+/6\]\s+lr: ([\d.e+-]+)', out)]
    start = 1e-8  # the config's ~0: lr = 1.5e-4 * (start + (1 - start) * k / 32000), k from 3
    ramp = [PEAK * (start + (1 - start) * k / (ACCUM * WARMUP)) for k in (1, 2)]
    np.testing.assert_allclose(lrs, [PEAK * start] * 4 + ramp, rtol=2e-4)  # 5 digits logged
    val = _ppl(out)
    out = run_tool([python, 'tools/test.py', config, str(tmp_path / 'iter_6.pth'),
                    '--work-dir', str(tmp_path), *opts])
    assert _ppl(out) == pytest.approx(val, rel=2e-4)  # the validation of the saved weights
    assert 1 < _ppl(out) < 2 * VOCAB


def test_fsdp_config_trains_and_tests(shards, python, tmp_path):
    """LVM-1B's config sharded over 2 CPU processes (FSDP bf16 mixed precision as shipped); its
    full checkpoint is an ordinary one that tools/test.py evaluates in one process (fp32: the
    perplexity of the bf16 validation within bf16 rounding)."""
    from mmpretrain.registry import MODELS
    config = CONFIGS['1b']
    opts = _tiny(shards, 3)
    out = run_tool(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', str(tmp_path),
                    *opts], env=dict(PORT=str(free_port())))
    assert 'FSDPStrategy wrapper built with device_id' in out, out[-3000:]
    assert re.search(r'Iter\(train\) \[3/3\]', out), out[-3000:]
    val = _ppl(out)
    ckpt = torch.load(tmp_path / 'iter_3.pth', map_location='cpu', weights_only=False)
    cfg = _cfg('1b')
    cfg.model.backbone.update(arch='debug', vocab_size=VOCAB)
    cfg.model.update(num_codes=CODES, bos_id=CODES, eos_id=CODES + 1, pad_id=CODES + 2)
    fresh = MODELS.build(cfg.model).state_dict()
    assert {k: v.shape for k, v in ckpt['state_dict'].items()} == \
        {k: v.shape for k, v in fresh.items()}  # unsharded, unwrapped keys
    out = run_tool([python, 'tools/test.py', config, str(tmp_path / 'iter_3.pth'),
                    '--work-dir', str(tmp_path), *opts])
    assert 'running unsharded on the Runner' in out, out[-3000:]
    assert _ppl(out) == pytest.approx(val, rel=2e-3)
    assert 1 < _ppl(out) < 2 * VOCAB


def test_metafile_lists_every_config():
    """configs/lvm/metafile.yml: one entry per shipped config (sizes, tokenizer, toy), and each
    size's parameter count is the decoder's exact count."""
    import yaml
    with open(osp.join(REPO, 'configs/lvm/metafile.yml')) as f:
        models = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    shipped = {osp.splitext(osp.relpath(p, osp.join(REPO, 'configs/lvm')))[0]: p
               for p in glob.glob(osp.join(REPO, 'configs/lvm/**/*.py'), recursive=True)
               if '_base_' not in p}
    assert {osp.basename(k) for k in shipped} == set(models)
    for size, path in CONFIGS.items():
        entry = models[osp.splitext(osp.basename(path))[0]]
        assert entry['Config'] == osp.relpath(path, REPO)
        assert entry['Metadata']['Parameters'] == LLaMADecoder.num_params(size)
