"""``init_cfg=dict(type='Pretrained', ...)`` that refuses to half-load, and checkpoint URLs.

mmengine's ``PretrainedInit`` loads with ``strict=False`` and only logs what did not fit, so a
checkpoint of another arch (a ConvNeXt V2 femto checkpoint under the atto config: every tensor of
another width) loads nothing and training starts from random weights with exit code 0. Every
module of this package that takes an ``init_cfg`` inherits :class:`PretrainedInitMixin`, whose
``init_weights`` loads its ``Pretrained`` entries through :func:`load_pretrained` instead:

* the checkpoint is read with ``torch.load(weights_only=True)``; ``prefix`` selects a sub-module
  (``'backbone.'``) and a prefix the checkpoint does not have is named with the prefixes it has;
* the module's own load hooks run (ViTamin resizes ``pos_embed``);
* **nothing loaded is always an error**, with the key report of ``tools/test.py`` (missing,
  unexpected and shape-mismatched keys, named);
* by default at least :data:`MIN_LOADED` (90%) of the module's tensors must load: a fine-tuning
  backbone may legitimately lack a checkpoint's class token or have a fresh final norm (MAE ->
  fine-tuning leaves 2-3 tensors, FCMAE -> fine-tuning 2), never a tenth of its weights;
* ``strict=True`` in the ``init_cfg`` asks for an exact fit (every key, no extra ones);
  ``strict=False`` (or the config's ``load_strict = False``, read by ``tools/train.py`` /
  ``tools/test.py``) loads any non-empty matching part on purpose, with the report as a warning;
  ``min_loaded=`` sets another fraction.

A ``checkpoint`` (and ``load_from``) that is an ``http(s)://`` URL is downloaded into torch's hub
cache (``$TORCH_HOME/hub/checkpoints``, where mmengine caches it too) and then read with
``weights_only=True``; a download that fails is one line saying so, with the local-path fix.
"""
import logging
import os
import os.path as osp
import re
from contextlib import contextmanager
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlparse

import torch.nn as nn
from mmengine.logging import print_log

from .checks import LoadReport, _load_into

__all__ = ['MIN_LOADED', 'PretrainedInitMixin', 'checkpoint_cache_path', 'load_checkpoint_source',
           'load_pretrained', 'partial_pretrained', 'split_pretrained']

#: Default fraction of a module's tensors a ``Pretrained`` init_cfg must load.
MIN_LOADED = 0.9

_PRETRAINED_KEYS = ('type', 'checkpoint', 'prefix', 'map_location', 'strict', 'min_loaded')
_REMOTE = re.compile(r'^https?://', re.IGNORECASE)
_PARTIAL_ALLOWED: List[bool] = [False]


@contextmanager
def partial_pretrained(allowed: bool = True):
    """Within the block, ``Pretrained`` init_cfgs without their own ``strict`` load any non-empty
    matching part (what the config's ``load_strict = False`` asks for; the Runner enters it)."""
    _PARTIAL_ALLOWED.append(bool(allowed))
    try:
        yield
    finally:
        _PARTIAL_ALLOWED.pop()


def checkpoint_cache_path(url: str) -> str:
    """Where a downloaded ``url`` is kept: torch's hub cache, as mmengine's ``load_from_http``."""
    import torch.hub
    return osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(urlparse(url).path))


def _download(url: str, what: str) -> str:
    """``url`` into the hub cache (once; a cached file is used as it is) -> the local path."""
    from mmengine.dist import barrier, get_dist_info
    from torch.hub import download_url_to_file
    cached = checkpoint_cache_path(url)
    rank, world_size = get_dist_info()
    if not osp.isfile(cached) and rank == 0:
        os.makedirs(osp.dirname(cached), exist_ok=True)
        print_log(f'Downloading {url} to {cached}', logger='current')
        try:
            download_url_to_file(url, cached, progress=False)
        except Exception as err:  # noqa: BLE001 (URLError, HTTPError, timeouts, SSL errors ...)
            reason = getattr(err, 'reason', None) or err
            raise RuntimeError(
                f'{what}: could not download {url} ({type(err).__name__}: {reason}). Download '
                f'it on a machine with internet access and pass the local path instead (or put '
                f'the file at {cached}, where it is looked for first).') from None
    if world_size > 1:
        barrier()
    return cached


def load_checkpoint_source(filename: str, map_location='cpu', what: str = 'checkpoint') -> dict:
    """Read a checkpoint from a local path or an ``http(s)://`` URL with ``weights_only=True``.

    Other schemes (``open-mmlab://``, ``s3://``, ...) go to mmengine's ``CheckpointLoader``; a
    network failure there is also reported in one line.

    Args:
        filename: Local path or URL.
        map_location: As in ``torch.load``.
        what: Who asks (``load_from``, ``ViTamin init_cfg``), named in the error.

    Raises:
        RuntimeError: the download failed; the message names the URL, the reason and the fix.
    """
    from ..compat import load_checkpoint_file
    filename = str(filename)
    if _REMOTE.match(filename):
        return load_checkpoint_file(_download(filename, what), map_location=map_location)
    if '://' not in filename:
        return load_checkpoint_file(filename, map_location=map_location)
    from urllib.error import URLError

    from mmengine.runner.checkpoint import CheckpointLoader
    try:
        return CheckpointLoader.load_checkpoint(filename, map_location)
    except (URLError, ConnectionError, TimeoutError) as err:
        raise RuntimeError(
            f'{what}: could not download {filename} ({type(err).__name__}: '
            f'{getattr(err, "reason", None) or err}). Download it on a machine with internet '
            f'access and pass the local path instead.') from None


def split_pretrained(init_cfg) -> Tuple[List[dict], Optional[list]]:
    """``init_cfg`` -> (its ``Pretrained`` entries, the other entries or None)."""
    from mmengine.model.weight_init import PretrainedInit
    if not init_cfg:
        return [], init_cfg
    cfgs = [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg)
    pretrained = [c for c in cfgs
                  if isinstance(c, dict) and c.get('type') in ('Pretrained', PretrainedInit)]
    others = [c for c in cfgs if not any(c is p for p in pretrained)]
    return pretrained, (others or None)


def _describe(cfg: dict) -> str:
    args = ', '.join(f'{k}={cfg[k]!r}' for k in ('checkpoint', 'prefix') if cfg.get(k))
    return f"init_cfg=dict(type='Pretrained', {args})"


def _select_prefix(state_dict: Dict, prefix: Optional[str], filename: str, who: str) -> Dict:
    if not prefix:
        return {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}
    if not prefix.endswith('.'):
        prefix += '.'
    selected = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not selected:
        heads = sorted({k.split('.', 1)[0] + '.' for k in state_dict})
        raise KeyError(f'{who}: no key of {filename} starts with prefix {prefix!r}; its keys '
                       f'start with {heads[:10]}{" ..." if len(heads) > 10 else ""}. Fix prefix '
                       f'in the init_cfg (or leave it out for a bare {who} checkpoint).')
    return selected


def _prefix_hint(module: nn.Module, state_dict: Dict) -> str:
    """`` Add prefix='backbone.' ...`` when the keys under one first component fit the model."""
    own = set(module.state_dict())
    for head in sorted({k.split('.', 1)[0] for k in state_dict if '.' in k}):
        n = len(head) + 1
        if any(k[n:] in own for k in state_dict if k.startswith(head + '.')):
            return (f" The checkpoint's keys under {head + '.'!r} fit the model: add "
                    f"prefix={head + '.'!r} to the init_cfg.")
    return ''


def load_pretrained(module: nn.Module, cfg: dict, logger='current') -> LoadReport:
    """Load one ``dict(type='Pretrained', checkpoint=..., prefix=None, map_location='cpu',
    strict=None, min_loaded=MIN_LOADED)`` into ``module``, checked (see the module doc).

    Raises:
        RuntimeError: no tensor loaded, or fewer than ``min_loaded`` of the module's tensors
            (``strict=None``), or anything did not fit (``strict=True``); the message has the key
            report (counts and names of the missing, unexpected and shape-mismatched keys).
        KeyError: the checkpoint has no key under ``prefix``.
        ValueError: unknown keys in the init_cfg, or a ``min_loaded`` outside (0, 1].
    """
    who = type(module).__name__
    unknown = sorted(set(cfg) - set(_PRETRAINED_KEYS))
    if unknown or not cfg.get('checkpoint'):
        raise ValueError(f'{who}: {_describe(cfg)}: ' + (
            f'unknown keys {unknown}; valid: {list(_PRETRAINED_KEYS)}.' if unknown else
            'no checkpoint given.'))
    strict, min_loaded = cfg.get('strict'), cfg.get('min_loaded', MIN_LOADED)
    if strict not in (None, True, False):
        raise ValueError(f'{who}: {_describe(cfg)}: strict must be True, False or None, got '
                         f'{strict!r}.')
    if isinstance(min_loaded, bool) or not isinstance(min_loaded, (int, float)) or \
            not 0 < min_loaded <= 1:
        raise ValueError(f'{who}: {_describe(cfg)}: min_loaded must be a fraction in (0, 1], got '
                         f'{min_loaded!r}.')
    filename, prefix = str(cfg['checkpoint']), cfg.get('prefix')
    where = f'{who} {_describe(cfg)}'
    print_log(f'load {prefix} in model from: {filename}' if prefix else
              f'load model from: {filename}', logger=logger)
    try:
        checkpoint = load_checkpoint_source(filename, cfg.get('map_location', 'cpu'), what=where)
    except (FileNotFoundError, ValueError) as err:  # missing, not a checkpoint, truncated
        raise type(err)(f'{where}: {err}') from None
    state_dict = checkpoint
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get('state_dict'), dict):
        state_dict = checkpoint['state_dict']
    state_dict = _select_prefix(state_dict, prefix, filename, who)
    report = _load_into(module, state_dict)
    total = sum(1 for k in module.state_dict() if not k.endswith('num_batches_tracked'))
    partial = _PARTIAL_ALLOWED[-1] if strict is None else not strict
    what = (f'{where}: {report.loaded} of the model\'s {total} tensors loaded; checkpoint '
            f'{filename} does not fit the model ({who}): ')
    check = 'Check the config and the checkpoint match (arch, converted keys, prefix).'
    if report.loaded == 0:
        raise RuntimeError(what + report.summary() + '\nNothing would be loaded: the model would '
                           'start from random weights. ' + check + _prefix_hint(module, state_dict))
    if report and (strict or (not partial and report.loaded < min_loaded * total)):
        need = ('every key must fit (strict=True)' if strict else
                f'at least {min_loaded:.0%} of them must load')
        raise RuntimeError(
            what + report.summary() + f'\n{need}. {check} To load only the matching tensors on '
            'purpose, add strict=False to the init_cfg (or set `load_strict = False` in the '
            'config).')
    if report:
        # mmengine's own lines (what PretrainedInit logs), then the counts
        lines = []
        if report.unexpected:
            lines.append(f'unexpected key in source state_dict: {", ".join(report.unexpected)}')
        if report.missing:
            lines.append(f'missing keys in source state_dict: {", ".join(report.missing)}')
        print_log(f'{where}: loading the matching tensors only ({report.loaded} of {total}):\n' +
                  '\n'.join(lines + [report.summary()]), logger=logger, level=logging.WARNING)
    if hasattr(module, '_params_init_info'):
        from mmengine.model.weight_init import update_init_info
        update_init_info(module, init_info=f'PretrainedInit: load from {filename}')
    return report


class PretrainedInitMixin:
    """``init_weights`` with the ``Pretrained`` entries of ``init_cfg`` loaded by
    :func:`load_pretrained` (checked) after everything else, where mmengine would use its
    unchecked ``PretrainedInit``. Put it before mmengine's ``BaseModule`` in the bases.

    mmengine's ``BaseModule.init_weights`` is reused unchanged for the other entries and the
    children; only the ``Pretrained`` entries are held back from it for the duration of the call.
    """

    def init_weights(self):
        pretrained, others = split_pretrained(self.init_cfg)
        if not pretrained or getattr(self, '_is_init', False):
            return super().init_weights()
        init_cfg = self.init_cfg
        self.init_cfg = others
        try:
            super().init_weights()
        finally:
            self.init_cfg = init_cfg
        for cfg in pretrained:
            load_pretrained(self, cfg)
