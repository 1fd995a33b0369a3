"""Checks that turn silently accepted mistakes into errors that say what to fix.

* :func:`check_cfg_options`: a ``--cfg-options`` key whose top-level name is neither in the config
  nor read by the Runner (``randomnes.seed=1``) is refused with a "did you mean" hint; mmengine
  would add it as a new, unused entry.
* :func:`load_state_dict_checked`: a checkpoint whose weights do not fit the model (missing,
  unexpected or shape-mismatched keys) is refused with the keys named, unless partial loading is
  asked for with the top-level config key ``load_strict = False`` (which still refuses a
  checkpoint of which not one tensor fits). Used by
  :class:`visionllama_mm.engine.runner.Runner` for ``load_from``, ``tools/test.py CHECKPOINT`` and
  ``--resume``.
* :func:`check_keys`: weights against a model's key names and shapes alone (a model built on the
  meta device, nothing loaded), for converters and tools that check a file before using it.
"""
import difflib
import inspect
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Tuple

import torch.nn as nn

__all__ = ['KNOWN_TOP_LEVEL_KEYS', 'check_cfg_options', 'LoadReport', 'load_state_dict_checked',
           'check_keys']

#: Top-level config keys that mmengine's Runner, the stock tools or this package read although a
#: config need not define them (besides ``Runner.__init__``'s arguments).
KNOWN_TOP_LEVEL_KEYS = frozenset({
    'runner_type', 'model_wrapper_cfg', 'find_unused_parameters', 'sync_bn', 'compile',
    'activation_checkpointing', 'efficient_conv_bn_eval', 'custom_imports', 'tta_model',
    'tta_pipeline', 'gpu_ids', 'load_strict'})


def _runner_keys() -> set:
    from mmengine.runner import Runner
    return set(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'}


def check_cfg_options(cfg, options: Optional[Dict]) -> None:
    """Refuse ``--cfg-options`` keys whose top-level name the config does not know.

    Keys below an existing top-level key (``model.backbone.arch=...``) are left to mmengine, as
    in the stock tools; so are the config's own variables (``data_root=...``).

    Raises:
        ValueError: one line per unknown top-level name, with the closest known names.
    """
    if not options:
        return
    known = set(cfg.keys()) | _runner_keys() | KNOWN_TOP_LEVEL_KEYS
    lines = []
    for key in options:
        top = key.split('.', 1)[0]
        if top in known:
            continue
        close = difflib.get_close_matches(top, sorted(known), n=3, cutoff=0.6)
        hint = (f'did you mean {" or ".join(repr(c) for c in close)}?' if close else
                'a new top-level entry must be written in the config file')
        lines.append(f'  {key}: the config has no top-level key {top!r}; {hint}')
    if lines:
        raise ValueError('--cfg-options: unknown key(s):\n' + '\n'.join(lines))


class LoadReport:
    """What did not fit when a state dict was loaded into a model.

    Attributes:
        missing: model keys the checkpoint does not have.
        unexpected: checkpoint keys the model does not have.
        mismatched: ``(key, checkpoint shape, model shape)`` of keys present in both.
        other: any other error torch reported while copying.
        loaded: number of checkpoint tensors copied into the model.
    """

    def __init__(self, missing, unexpected, mismatched, other, loaded):
        self.missing, self.unexpected = missing, unexpected
        self.mismatched, self.other, self.loaded = mismatched, other, loaded

    def __bool__(self):  # True when something did not fit
        return bool(self.missing or self.unexpected or self.mismatched or self.other)

    def summary(self, limit: int = 5) -> str:
        def some(keys: List[str]) -> str:
            more = f', ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
            return ', '.join(keys[:limit]) + more

        parts = [f'{len(self.missing)} missing, {len(self.unexpected)} unexpected, '
                 f'{len(self.mismatched)} shape-mismatched keys ({self.loaded} tensors loaded)']
        if self.missing:
            parts.append(f'  missing in the checkpoint ({len(self.missing)}): '
                         f'{some(self.missing)}')
        if self.unexpected:
            parts.append(f'  not in the model ({len(self.unexpected)}): {some(self.unexpected)}')
        if self.mismatched:
            shapes = [f'{k} {tuple(c)} in checkpoint vs {tuple(m)} in model'
                      for k, c, m in self.mismatched]
            parts.append(f'  shape mismatch ({len(self.mismatched)}): {some(shapes)}')
        parts += [f'  {msg}' for msg in self.other]
        return '\n'.join(parts)


# torch.nn.Module._load_from_state_dict's message for a shape mismatch
_SIZE_MISMATCH = re.compile(r'size mismatch for (\S+): copying a param with shape (.*) from '
                            r'checkpoint, the shape in current model is (.*)\.$')


def _unwrap(module: nn.Module) -> nn.Module:
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(module) or isinstance(module, BaseTTAModel):
        module = module.module
    return module


def _load_into(module: nn.Module, state_dict: Dict) -> LoadReport:
    """Copy ``state_dict`` into ``module`` as mmengine's ``load_state_dict`` does (per-module
    ``_load_from_state_dict``, so load pre-hooks such as position-embedding resizing run), and
    collect what did not fit instead of printing it."""
    missing: List[str] = []
    unexpected: List[str] = []
    errors: List[str] = []
    metadata = getattr(state_dict, '_metadata', None)

    def load(mod: nn.Module, local: Dict, prefix: str = '') -> None:
        mod = _unwrap(mod)
        meta = {} if metadata is None else metadata.get(prefix[:-1], {})
        mod._load_from_state_dict(local, prefix, meta, True, missing, unexpected, errors)
        for name, child in mod._modules.items():
            if child is not None:
                child_prefix = f'{prefix}{name}.'
                load(child, {k: v for k, v in local.items() if k.startswith(child_prefix)},
                     child_prefix)

    load(module, dict(state_dict))
    mismatched: List[Tuple[str, str, str]] = []
    other: List[str] = []
    for msg in errors:
        match = _SIZE_MISMATCH.match(msg.strip())
        if match:
            shape = lambda s: tuple(int(x) for x in re.findall(r'\d+', s))  # noqa: E731
            mismatched.append((match.group(1), shape(match.group(2)), shape(match.group(3))))
        else:
            other.append(msg.strip())
    missing = [k for k in missing if not k.endswith('num_batches_tracked')]
    bad = set(missing) | set(unexpected) | {m[0] for m in mismatched}
    loaded = sum(1 for k in state_dict if k not in bad)
    return LoadReport(missing, unexpected, mismatched, other, loaded)


def load_state_dict_checked(model: nn.Module, state_dict: Dict, source: str,
                            strict: bool = True,
                            revise_keys: Iterable[Tuple[str, str]] = ((r'^module\.', ''), ),
                            logger=None) -> LoadReport:
    """Load ``state_dict`` into ``model``; refuse it if it does not fit, unless ``strict=False``.

    Args:
        model: The model (a DDP/TTA wrapper is unwrapped).
        state_dict: Weights, or a checkpoint dict holding them under ``'state_dict'``.
        source: Where the weights come from (named in the messages).
        strict: Raise when keys are missing, unexpected or of another shape. With ``False`` the
            matching tensors are loaded and the rest is logged as a warning.
        revise_keys: ``(pattern, replacement)`` regexes applied to the keys (mmengine's default
            strips the ``module.`` of DDP checkpoints).

    Raises:
        RuntimeError: ``strict`` and the weights do not fit, or not one tensor fits (also with
            ``strict=False``); the message counts and names the keys.
    """
    from mmengine.logging import print_log
    if 'state_dict' in state_dict and isinstance(state_dict['state_dict'], dict):
        state_dict = state_dict['state_dict']
    metadata = getattr(state_dict, '_metadata', OrderedDict())
    for pattern, repl in revise_keys:
        state_dict = OrderedDict((re.sub(pattern, repl, k), v) for k, v in state_dict.items())
    state_dict._metadata = metadata
    model = _unwrap(model)
    report = _load_into(model, state_dict)
    if not report:
        return report
    what = f'checkpoint {source} does not fit the model ({type(model).__name__}): '
    if strict:
        raise RuntimeError(
            what + report.summary() + '\nCheck the config and the checkpoint match (arch, '
            'num_classes, converted keys). To load only the matching tensors on purpose, set '
            '`load_strict = False` in the config or pass --cfg-options load_strict=False.')
    if report.loaded == 0:  # a partial load that loads nothing is never what was meant
        raise RuntimeError(
            what + report.summary() + '\nNothing would be loaded, even with load_strict=False: '
            'the model would keep its initial weights. Check the config and the checkpoint '
            'match (arch, num_classes, converted keys).')
    print_log('[visionllama_mm] load_strict=False, loading the matching tensors only: ' + what +
              report.summary(), logger=logger or 'current', level=30)
    return report


def check_keys(state_dict: Dict, expected: Dict, where: str) -> None:
    """Raise one ``ValueError`` naming every missing, unexpected and mis-shaped key of
    ``state_dict`` against ``expected`` (key -> shape, e.g. of a meta-device model's state dict):
    ``{where}: the keys do not match the model: missing (n): [...]; unexpected (n): [...];
    shape mismatch (n): ['key: (checkpoint shape) != (model shape)']`` (ten keys of each at most).
    Unlike :class:`LoadReport` nothing is loaded: the shapes are all that is compared."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = sorted(f'{k}: {tuple(state_dict[k].shape)} != {tuple(expected[k])}'
                    for k in set(expected) & set(state_dict)
                    if tuple(state_dict[k].shape) != tuple(expected[k]))
    if missing or unexpected or shapes:
        parts = [f'{name} ({len(keys)}): {keys[:10]}{" ..." if len(keys) > 10 else ""}'
                 for name, keys in (('missing', missing), ('unexpected', unexpected),
                                    ('shape mismatch', shapes)) if keys]
        raise ValueError(f'{where}: the keys do not match the model: ' + '; '.join(parts))
