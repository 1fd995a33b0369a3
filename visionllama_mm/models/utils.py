"""Helpers every model family of the package shares: reading an ``arch`` argument, activation
checkpointing, and renamed constructor arguments.

They are plain functions (not methods of a base class) because the families do not share one:
the backbones derive from mmpretrain's ``BaseBackbone``, the DiT denoiser, the VQGAN tokenizer and
the CLIP text tower from mmengine's ``BaseModule``.
"""
import logging
import warnings
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
import torch.utils.checkpoint as cp
from mmengine.logging import print_log

__all__ = ['parse_arch', 'checkpoint_call', 'renamed_arg', 'warn_deprecated']


def warn_deprecated(message: str, stacklevel: int = 3) -> None:
    """A ``DeprecationWarning``, also logged: Python hides that category outside ``__main__``,
    so a config run by a tool would otherwise use an old name without a word."""
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel)
    print_log(message, logger='current', level=logging.WARNING)


def _warn_renamed(owner: str, old: str, new: str, what: str = 'argument') -> None:
    warn_deprecated(f'{owner}: the {what} {old!r} is deprecated and will be removed in the next '
                    f'release; use {new!r}.', stacklevel=5)


def parse_arch(arch: Union[str, dict],
               arch_zoo: Mapping[str, dict],
               required: Sequence[str] = (),
               optional: Union[Sequence[str], Mapping[str, Any]] = (),
               aliases: Optional[Mapping[str, str]] = None,
               owner: str = 'model') -> dict:
    """Settings of an ``arch`` argument: a name of ``arch_zoo`` or a dict of settings.

    Args:
        arch: A name of ``arch_zoo`` (case-insensitive; aliases such as ``'s'`` / ``'small'``
            are keys of the zoo that share one dict) or a dict with every key of ``required``
            and any of ``optional``.
        arch_zoo: ``{name: settings}``.
        required: Keys a custom dict must have.
        optional: Keys a custom dict may have; a mapping gives their defaults, which are filled
            in (for zoo entries too).
        aliases: ``{old key: new key}`` of renamed keys: a dict using an old key still works,
            with a ``DeprecationWarning`` naming the new one.
        owner: The class name that starts every error message.

    Returns:
        A new dict (the zoo's entries are never handed out to be modified).

    Raises:
        ValueError: An unknown name (the message lists the valid names and the required keys),
            a dict missing required keys (it lists them) or with unknown keys (it lists the valid
            ones).
    """
    defaults = dict(optional) if isinstance(optional, Mapping) else {}
    if isinstance(arch, str):
        key = arch.lower()
        if key not in arch_zoo:
            keys = (f'keys {list(required)}' if required else
                    f'any of the keys {list(required) + list(optional)}')
            raise ValueError(f'{owner}: unknown arch {arch!r}; valid names: '
                             f'{", ".join(sorted(arch_zoo))}, or a dict with {keys}.')
        return {**defaults, **arch_zoo[key]}
    if not isinstance(arch, Mapping):
        raise ValueError(f'{owner}: a custom arch must be a dict with keys {list(required)}, '
                         f'got {arch!r}.')
    arch = dict(arch)
    for old, new in (aliases or {}).items():
        if old in arch:
            if new in arch:
                raise ValueError(f'{owner}: arch has both {old!r} and {new!r}; {old!r} is the '
                                 f'deprecated name of {new!r}, give only {new!r}.')
            _warn_renamed(owner, old, new, what='arch key')
            arch[new] = arch.pop(old)
    missing = [k for k in required if k not in arch]
    if missing:
        raise ValueError(f'{owner}: a custom arch must be a dict with keys {list(required)}; '
                         f'missing {missing} in {arch!r}.')
    unknown = sorted(set(arch) - set(required) - set(optional))
    if unknown:
        raise ValueError(f'{owner}: unknown arch keys {unknown}; valid keys: '
                         f'{list(required) + list(optional)}.')
    return {**defaults, **arch}


def checkpoint_call(fn: Callable, x: torch.Tensor, *args, enabled: bool = True,
                    **kwargs) -> Any:
    """``fn(x, *args, **kwargs)``, activation-checkpointed when ``enabled`` and ``x`` requires
    gradients: its activations are recomputed in the backward pass instead of kept (non-reentrant
    ``torch.utils.checkpoint``, so keyword arguments and inputs without gradients are fine).

    Callers pass ``enabled=self.with_cp and self.training``. timm's ``checkpoint_seq`` does not
    serve here: it runs a sequence of one-input modules, while the blocks of this package take
    RoPE tables, grid sizes or a conditioning vector besides ``x``.
    """
    if enabled and x.requires_grad:
        return cp.checkpoint(fn, x, *args, use_reentrant=False, **kwargs)
    return fn(x, *args, **kwargs)


def renamed_arg(owner: str, old: str, old_value: Any, new: str, new_value: Any,
                new_default: Any = None) -> Any:
    """The value of argument ``new`` whose old name ``old`` still works for one release.

    ``old_value`` (when not None) is returned with a ``DeprecationWarning`` naming ``new``; giving
    both names (``new_value`` differing from ``new_default``) is an error.
    """
    if old_value is None:
        return new_value
    if new_value is not new_default and new_value != new_default:
        raise ValueError(f'{owner}: got both {old!r} and {new!r}; {old!r} is the deprecated name '
                         f'of {new!r}, give only {new!r}.')
    _warn_renamed(owner, old, new)
    return old_value
