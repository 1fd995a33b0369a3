"""Sharded data parallel (FSDP) training with mmengine's ``FlexibleRunner`` + ``FSDPStrategy``.

mmengine's ``FSDPStrategy`` and its ``MMFullyShardedDataParallel`` (torch's
``FullyShardedDataParallel`` with ``use_orig_params=True``) work with torch 2.14, on GPUs and on
CPUs with gloo (``device_id='cpu'``, set by :func:`visionllama_mm.engine.launch.adapt_to_device`),
except for one thing, which :class:`ShardedDataParallel` fixes (measured on 2 CPU processes: the
two ranks clipped by 1.56 and 0.93 where the whole gradient's norm was 1.82):

* **gradient clipping by the global norm.** ``OptimWrapper(clip_grad=dict(max_norm=...))`` calls
  ``torch.nn.utils.clip_grad_norm_`` on the optimizer's parameters. Under FSDP those hold only this
  rank's shard of each gradient, so every rank measures the norm of its own shard and scales it by
  its own factor: the update is not the unsharded model's (and differs from rank to rank). Here the
  optimizer wrapper's clip function is FSDP's ``clip_grad_norm_``, which reduces the norm over every
  shard (and counts replicated parameters once), so clipping uses the norm of the whole gradient.

It also loads checkpoints strictly: ``FlexibleRunner`` loads ``load_from`` / ``--resume`` with
``strict=False`` and mmengine discards the report, so weights of another layout would leave the
model at its initialisation without a word; :meth:`ShardedDataParallel.load_state_dict` names the
missing and unexpected keys (``strict_load=False`` to load partially), as this package's Runner
does for DDP and single-process runs.

Gradient accumulation stays sharded as it is: mmengine enters ``model.no_sync()`` around the
*forward* of the micro-steps that do not update and runs the backward after leaving it, while FSDP
reads the flag in its post-backward hooks; so every micro-step's gradient is reduce-scattered into
the sharded accumulator (the same sum), and no rank ever holds an unsharded full-size gradient
(4 bytes per parameter, 26 GB for LVM-7B), which FSDP's ``no_sync`` would keep.

Blocks are wrapped by :func:`transformer_block_wrap_policy` (one FSDP unit per
:class:`~visionllama_mm.models.layers.TransformerBlock`, the rest in the root unit)::

    runner_type = 'FlexibleRunner'
    strategy = dict(type='FSDPStrategy', state_dict_cfg='full',
                    model_wrapper=dict(type='ShardedDataParallel',
                                       auto_wrap_policy='transformer_block_wrap_policy',
                                       mixed_precision=dict(param_dtype='bfloat16', ...)))
"""
from functools import partial

import torch
import torch.nn as nn
from mmengine.model.wrappers import MMFullyShardedDataParallel
from mmengine.registry import FUNCTIONS, MODEL_WRAPPERS

from ..models.layers import TransformerBlock

__all__ = ['ShardedDataParallel', 'transformer_block_wrap_policy']


@FUNCTIONS.register_module()
def transformer_block_wrap_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int,
                                  **kwargs) -> bool:
    """FSDP auto-wrap policy: one FSDP unit per :class:`TransformerBlock` (torch's
    ``auto_wrap_policy(module, recurse, nonwrapped_numel)`` protocol); the embedding, the final
    norm and the head stay in the root unit."""
    return True if recurse else isinstance(module, TransformerBlock)


def _global_clip_grad_norm(model: 'ShardedDataParallel', params, max_norm: float,
                           norm_type: float = 2.0, error_if_nonfinite: bool = False,
                           foreach=None) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_``'s signature, clipping by the norm of the whole
    (unsharded) gradient of ``model``; ``params`` (this rank's shards) are ``model``'s."""
    norm = model.clip_grad_norm_(max_norm, norm_type)
    if error_if_nonfinite and not torch.isfinite(norm):
        raise RuntimeError(f'The total norm of order {norm_type} of the gradients is non-finite, '
                           'so it cannot be clipped (error_if_nonfinite=True).')
    return norm


@MODEL_WRAPPERS.register_module()
class ShardedDataParallel(MMFullyShardedDataParallel):
    """mmengine's :class:`MMFullyShardedDataParallel` (same arguments) with gradient clipping by
    the global norm and strict checkpoint loading (see the module docstring).

    Args:
        strict_load: Refuse a state dict (``load_from``, ``--resume``) with missing or unexpected
            keys, naming them. ``FlexibleRunner`` loads with ``strict=False`` and mmengine ignores
            what did not fit, so a checkpoint of another layout would silently leave the model at
            its initialisation. ``False`` restores that partial loading.
        *args, **kwargs: Those of :class:`MMFullyShardedDataParallel`.
    """

    def __init__(self, *args, strict_load: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.strict_load = strict_load

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        if (strict or self.strict_load) and (result.missing_keys or result.unexpected_keys):
            def some(keys):
                return ', '.join(keys[:5]) + (f', ... (+{len(keys) - 5} more)' if len(keys) > 5
                                              else '')
            raise RuntimeError(
                f'ShardedDataParallel: the state dict does not fit the model: '
                f'{len(result.missing_keys)} missing key(s) [{some(result.missing_keys)}], '
                f'{len(result.unexpected_keys)} unexpected key(s) '
                f'[{some(result.unexpected_keys)}]. Set strategy.model_wrapper.strict_load=False '
                'to load the matching tensors only.')
        return result

    def train_step(self, data, optim_wrapper):
        clip = getattr(optim_wrapper, 'clip_func', None)
        if getattr(optim_wrapper, 'clip_grad_kwargs', None) and clip is not None:
            if clip is torch.nn.utils.clip_grad_norm_:
                optim_wrapper.clip_func = partial(_global_clip_grad_norm, self)
            elif not (isinstance(clip, partial) and clip.func is _global_clip_grad_norm
                      # clipping by value is elementwise: right on the shards as they are
                      or clip is torch.nn.utils.clip_grad_value_):
                raise TypeError(f'ShardedDataParallel: cannot make the clip function {clip!r} of '
                                f'{type(optim_wrapper).__name__} use the global gradient norm.')
        return super().train_step(data, optim_wrapper)
