"""Recipe records: the official training recipe of each paper-table row, checked against our config.

Each family keeps ``configs/<family>/recipes.yml``: one entry per config that stands for a row of a
paper table, holding the official value of every field that changes the reproduced number, the
source of that value (official file and line, or the paper's table), and the deliberate
deviations of our config with their reason. :func:`check_entry` resolves the config exactly as
``tools/train.py`` reads it, builds its model (on the meta device: no memory, no weights read) and
its optimizer with the config's own constructor, and compares field by field.
``tools/analysis_tools/check_recipe.py`` prints the comparison; ``tests/test_recipes.py`` fails on
any difference that is not declared.

The file holds ``rows`` (a list of entries) and ``other_configs`` (``{config: why it stands for
no paper row}``); top-level keys starting with ``x-`` hold YAML anchors that entries share (merged
with ``<<: *name``). An entry::

    - config: visionllama-plain-small-p16_8xb256-800e_in1k.py   # relative to the yml's folder
      row: "Table 2, VisionLLaMA-S: 81.6 top-1"
      fields:                       # KEY: {official: VALUE, source: "where the value comes from"}
        '@total_batch': {official: 2048, source: "ImageNet1k_SFT.md:7 (--batch 256 x 8 GPUs)"}
        optim_wrapper.optimizer.lr: {official: 0.004, source: "..."}
        train_dataloader.dataset.pipeline.[RandomResizedCrop].scale: {official: 224, source: ...}
      params:                       # effective lr multiplier and weight decay in the built optimizer
        backbone.cls_token: {lr_mult: 1.0, weight_decay: 0.0, source: "..."}
      deviations:                   # KEY: {ours: VALUE, reason: "...", header: "phrase in the config"}
        optim_wrapper.optimizer.weight_decay: {ours: 0.05, reason: "...", header: "weight decay 0.05"}

Keys:

* a dotted path into the resolved config. A number selects a list item (``param_scheduler.0.end``);
  ``[TypeName]`` selects the first dict of a list whose ``type`` is ``TypeName``, searching nested
  lists too (``transforms`` of ``RandomChoice``/``TestTimeAug``). A path that does not resolve has
  the value ``null``, so ``official: null`` states that something is absent.
* ``<loader>.sampler.<field>`` looks through the ``ReproducibleSampler`` wrapper that every
  training config puts around its sampler (it keys each index, the order is the inner sampler's).
* a computed key (``@...``, see :data:`COMPUTED`): the total batch, the precision, the lists of
  transforms, the effective gradient clipping, the EMA momentum.
* ``params``: a parameter name of the built model; ``lr_mult`` is the lr of its parameter group
  divided by the optimizer's base lr, ``weight_decay`` the group's weight decay (absolute).

Values compare with a relative tolerance of 1e-6 for numbers, as lists for lists and tuples, and
as subsets for dicts (the keys the record gives must match).
"""
import contextlib
import importlib
import io
import logging
import math
import os.path as osp
import re
from typing import Dict, List

import yaml
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger

__all__ = ['load_records', 'resolve_key', 'effective_param_settings', 'check_entry',
           'format_markdown', 'COMPUTED', 'MISSING']


class _Missing:
    def __repr__(self):
        return 'null'


MISSING = _Missing()
_GPUS = re.compile(r'_(\d+)xb(\d+)')


def load_records(path: str, with_others: bool = False):
    """The ``rows`` entries of a ``recipes.yml``, each with ``path`` (the config file) added.

    ``with_others=True`` also returns ``other_configs``: ``{config: why it stands for no paper
    row}`` (learning toys, released-model evaluation settings).
    """
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    extra = {k for k in data if not str(k).startswith('x-')} - {'rows', 'other_configs'} \
        if isinstance(data, dict) else None
    if extra is None or extra:
        raise ValueError(f'{path}: expected a mapping with "rows" (a list of entries), '
                         f'"other_configs" and YAML anchors under "x-..." keys; got '
                         f'{sorted(extra) if extra else type(data).__name__}')
    entries, others = data.get('rows') or [], data.get('other_configs') or {}
    folder = osp.dirname(osp.abspath(path))
    for i, entry in enumerate(entries):
        unknown = set(entry) - {'config', 'row', 'fields', 'params', 'deviations', 'notes'}
        if 'config' not in entry or unknown:
            raise ValueError(f'{path}: entry {i} needs "config" and only the keys config, row, '
                             f'fields, params, deviations, notes; got {sorted(entry)}')
        entry['path'] = osp.join(folder, entry['config'])
        for key in entry.get('deviations') or {}:
            if key not in (entry.get('fields') or {}) and key not in (entry.get('params') or {}):
                raise ValueError(f'{path}: {entry["config"]}: deviation {key!r} is not a field '
                                 'or param of the entry (declare the official value first)')
    return (entries, others) if with_others else entries


# ----------------------------------------------------------------------------- resolving values
def _plain(value):
    if isinstance(value, (ConfigDict, dict)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _find_type(items, name: str):
    for item in items:
        if isinstance(item, dict):
            if item.get('type') == name:
                return item
            for sub in item.values():
                if isinstance(sub, (list, tuple)):
                    found = _find_type(sub, name)
                    if found is not None:
                        return found
        elif isinstance(item, (list, tuple)):
            found = _find_type(item, name)
            if found is not None:
                return found
    return None


def _walk(value, segments: List[str]):
    for seg in segments:
        if value is None or value is MISSING:
            return MISSING
        if seg.startswith('[') and seg.endswith(']'):
            if not isinstance(value, (list, tuple)):
                return MISSING
            value = _find_type(value, seg[1:-1])
            if value is None:
                return MISSING
        elif seg.lstrip('-').isdigit() and isinstance(value, (list, tuple)):
            index = int(seg)
            if not -len(value) <= index < len(value):
                return MISSING
            value = value[index]
        elif isinstance(value, dict):
            if seg not in value:
                return MISSING
            value = value[seg]
        else:
            return MISSING
    return value


def _transforms(pipeline):
    if pipeline is MISSING:  # e.g. a dataset of pre-extracted features has no pipeline
        return MISSING
    names = []
    for item in pipeline or []:
        if isinstance(item, (list, tuple)):
            names.extend(_transforms(item))
        elif isinstance(item, dict):
            names.append(item.get('type'))
    return names


def _loader_pipeline(cfg, loader: str):
    dataset = (cfg.get(loader) or {}).get('dataset') or {}
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']  # wrappers (RepeatDataset, ClassBalancedDataset, ...)
    return dataset.get('pipeline', MISSING)


def _gpus(cfg) -> int:
    match = _GPUS.search(osp.basename(cfg.filename or ''))
    if not match:
        raise ValueError(f'{cfg.filename}: the name has no {{N}}xb{{B}} part, so the number of '
                         'GPUs of the recipe is unknown')
    return int(match.group(1))


def _total_batch(cfg) -> int:
    per_gpu = cfg.train_dataloader.batch_size
    accum = (cfg.get('optim_wrapper') or {}).get('accumulative_counts', 1)
    return _gpus(cfg) * per_gpu * accum


def _precision(cfg) -> str:
    wrapper = cfg.get('optim_wrapper') or {}
    if wrapper.get('type') == 'AmpOptimWrapper':
        dtype = wrapper.get('dtype') or 'float16'
    else:  # FSDP configs keep their mixed precision in the strategy
        strategy = cfg.get('strategy') or {}
        mp = (strategy.get('model_wrapper') or {}).get('mixed_precision') or {}
        dtype = mp.get('param_dtype') if isinstance(mp, dict) else None
        if not dtype:
            return 'fp32'
    name = str(dtype).replace('torch.', '')
    return {'float16': 'fp16', 'bfloat16': 'bf16'}.get(name, name)


def _max_grad_norm(cfg):
    """The global gradient-norm clipping that acts: the wrapper's ``clip_grad`` and an
    optimizer's own (LAMB clips the global norm at ``max_grad_norm``, 1.0 unless given)."""
    wrapper = cfg.get('optim_wrapper') or {}
    clip = wrapper.get('clip_grad')
    if isinstance(clip, dict) and clip.get('max_norm') is not None:
        return clip['max_norm']
    optimizer = wrapper.get('optimizer') or {}
    if optimizer.get('type') == 'Lamb':
        return optimizer.get('max_grad_norm', 1.0)
    return None


def _ema_momentum(cfg):
    for hook in cfg.get('custom_hooks') or []:
        if isinstance(hook, dict) and hook.get('type') == 'EMAHook':
            return hook.get('momentum', 0.0002)
    return None


COMPUTED = {
    '@gpus': _gpus,
    '@total_batch': _total_batch,
    '@precision': _precision,
    '@max_grad_norm': _max_grad_norm,
    '@ema_momentum': _ema_momentum,
    '@train_transforms': lambda cfg: _transforms(_loader_pipeline(cfg, 'train_dataloader')),
    '@test_transforms': lambda cfg: _transforms(_loader_pipeline(cfg, 'test_dataloader')),
    '@train_pipeline': lambda cfg: _loader_pipeline(cfg, 'train_dataloader'),
    '@test_pipeline': lambda cfg: _loader_pipeline(cfg, 'test_dataloader'),
}


def resolve_key(cfg: Config, key: str):
    """The value of a record key (dotted path or computed ``@`` key) in a resolved config."""
    if key.startswith('@'):
        head, _, rest = key.partition('.')
        if head not in COMPUTED:
            raise ValueError(f'unknown computed key {head!r}; known: {sorted(COMPUTED)}')
        value = COMPUTED[head](cfg)
        return _plain(_walk(value, _split(rest)) if rest else value)
    segments = _split(key)
    if len(segments) > 2 and segments[0].endswith('_dataloader') and segments[1] == 'sampler':
        sampler = _walk(cfg._cfg_dict, segments[:2])
        if isinstance(sampler, dict) and sampler.get('type') == 'ReproducibleSampler':
            # the wrapper only keys each index for the augmentation seeds: the order is its
            # inner sampler's, which is what a recipe's sampler fields describe
            return _plain(_walk(sampler.get('sampler'), segments[2:]))
    return _plain(_walk(cfg._cfg_dict, segments))


def _split(path: str) -> List[str]:
    """``a.[Type].b.0`` -> ['a', '[Type]', 'b', '0'] (a dot inside ``[...]`` stays)."""
    return [seg for seg in re.findall(r'\[[^\]]*\]|[^.]+', path) if seg]


# ----------------------------------------------------------------------- the built optimizer
def effective_param_settings(cfg: Config, names=None) -> Dict[str, Dict[str, float]]:
    """For each parameter (or those in ``names``): its lr multiplier and weight decay in the
    optimizer that the config's ``optim_wrapper`` builds (its constructor and ``paramwise_cfg``).

    The model is built on the meta device. An AMP wrapper is built as a plain ``OptimWrapper``
    (the parameter groups do not depend on it; AMP itself needs a GPU). A parameter that does not
    require gradients when the model is built (a locked tower) is reported with ``lr_mult`` 0 and
    ``weight_decay`` 0, whatever group holds it: the optimizer never updates or decays it.
    """
    from mmengine.registry import DefaultScope

    from .models.builder import build_model_on_meta
    model, scope = build_model_on_meta(cfg)
    wrapper_cfg = cfg.optim_wrapper.copy()
    # as mmengine's build_optim_wrapper: the constructor's own keys are not the wrapper's
    constructor_type = wrapper_cfg.pop('constructor', 'DefaultOptimWrapperConstructor')
    paramwise_cfg = wrapper_cfg.pop('paramwise_cfg', None)
    if wrapper_cfg.get('type') == 'AmpOptimWrapper':
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            wrapper_cfg.pop(key, None)
        wrapper_cfg.type = 'OptimWrapper'
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the constructors log (or print) a line per parameter
    try:
        with DefaultScope.overwrite_default_scope(scope), \
                contextlib.redirect_stdout(io.StringIO()):
            registry = importlib.import_module(f'{scope}.registry')
            constructor = registry.OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
                type=constructor_type, optim_wrapper_cfg=wrapper_cfg,
                paramwise_cfg=paramwise_cfg))
            optimizer = constructor(model).optimizer
    finally:
        logger.setLevel(level)
    base_lr, base_wd = optimizer.defaults['lr'], optimizer.defaults.get('weight_decay', 0.0)
    by_id = {}
    for group in optimizer.param_groups:
        for p in group['params']:
            by_id[id(p)] = dict(lr_mult=group['lr'] / base_lr if base_lr else float('nan'),
                                weight_decay=group.get('weight_decay', base_wd))
    wanted = set(names) if names is not None else None
    out = {}
    for name, p in model.named_parameters():
        if wanted is None or name in wanted:
            if not p.requires_grad:  # frozen (e.g. a locked tower): never updated nor decayed
                out[name] = dict(lr_mult=0.0, weight_decay=0.0)
            else:
                out[name] = by_id.get(id(p), dict(lr_mult=None, weight_decay=None))
    return out


# ---------------------------------------------------------------------------------- comparing
def _equal(a, b) -> bool:
    if a is MISSING or b is MISSING:
        return (a is MISSING or a is None) and (b is MISSING or b is None)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):  # a: the record's value (a subset)
        return all(k in b and _equal(v, b[k]) for k, v in a.items())
    return a == b


def _header_text(path: str) -> str:
    with open(path) as f:
        text = f.read()
    comments = ' '.join(line.split('#', 1)[1] for line in text.splitlines() if '#' in line)
    return re.sub(r'\s+', ' ', comments).lower()


def check_entry(entry: dict) -> List[dict]:
    """Compare one record entry with its config; one row per field and param.

    Each row: ``key``, ``official``, ``ours`` (the config's value), ``status`` (``ok``,
    ``deviation`` (declared, and the config holds the declared value), ``MISMATCH``), ``note``
    (the source, or the deviation's reason, or what is wrong).
    """
    cfg = Config.fromfile(entry['path'])
    deviations = entry.get('deviations') or {}
    header = _header_text(entry['path'])
    rows = []

    def compare(key, official, ours, source):
        dev = deviations.get(key)
        if dev is None:
            ok = _equal(official, ours)
            rows.append(dict(key=key, official=official, ours=ours,
                             status='ok' if ok else 'MISMATCH',
                             note=source if ok else f'undeclared difference (official: {source})'))
            return
        problems = []
        if not _equal(dev.get('ours'), ours):
            problems.append(f'the config has {ours!r}, the record declares {dev.get("ours")!r}')
        if _equal(official, ours):
            problems.append('declared as a deviation but equal to the official value')
        phrase = re.sub(r'\s+', ' ', str(dev.get('header', ''))).lower().strip()
        if not phrase or phrase not in header:
            problems.append(f'the config\'s comments do not contain {dev.get("header")!r}')
        rows.append(dict(key=key, official=official, ours=ours,
                         status='MISMATCH' if problems else 'deviation',
                         note='; '.join(problems) if problems else dev.get('reason', '')))

    for key, spec in (entry.get('fields') or {}).items():
        compare(key, spec.get('official'), resolve_key(cfg, key), spec.get('source', ''))
    params = entry.get('params') or {}
    if params:
        settings = effective_param_settings(cfg, names=list(params))
        for name, spec in params.items():
            if name not in settings:
                rows.append(dict(key=name, official=spec, ours=None, status='MISMATCH',
                                 note='no such parameter in the built model'))
                continue
            official = {k: spec[k] for k in ('lr_mult', 'weight_decay') if k in spec}
            compare(name, official, settings[name], spec.get('source', ''))
    return rows


def format_markdown(entries: List[dict]) -> str:
    """The per-row table of a family README: the config that reproduces each paper row and the
    deviations that remain."""
    lines = ['| paper row | config | deviations from the official recipe |', '|---|---|---|']
    for entry in entries:
        devs = entry.get('deviations') or {}
        text = '<br>'.join(f'`{k}`: {d.get("reason", "")}' for k, d in devs.items()) or 'none'
        name = osp.splitext(entry['config'])[0]
        lines.append(f'| {entry.get("row", "")} | [{name}]({entry["config"]}) | {text} |')
    return '\n'.join(lines)
