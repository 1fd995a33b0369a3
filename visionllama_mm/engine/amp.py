"""Mixed-precision training on the CPU: bf16 autocast, no loss scaling.

mmengine's ``AmpOptimWrapper`` asserts a GPU (its ``GradScaler`` is CUDA's). On a CPU-only machine
``tools/train.py --amp`` (and any config with ``AmpOptimWrapper``) is given
:class:`CPUBF16AmpOptimWrapper` instead (see :func:`visionllama_mm.engine.launch.adapt_to_device`).

bf16 has fp32's exponent range, so gradients neither underflow nor overflow where fp32's would not:
no loss scaling is needed (``torch.autocast`` on the CPU supports bf16 only, as mmengine's own
``autocast`` helper asserts). Parameters, gradients and optimizer states stay fp32; autocast casts
the inputs of matmul-like ops (linear, conv, bmm, SDPA) to bf16 and keeps reductions such as the
losses in fp32.

Validation and testing are not affected: mmengine's ``ValLoop``/``TestLoop`` autocast only with
``val_cfg = dict(fp16=True)`` (on the CPU that is bf16 too).
"""
import logging
from contextlib import contextmanager

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

__all__ = ['CPUBF16AmpOptimWrapper', 'native_bf16']


def native_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls natively (AVX512-BF16 or AMX, as oneDNN sees it)."""
    return bool(torch.backends.mkldnn.is_available()
                and torch.ops.mkldnn._is_mkldnn_bf16_supported())


@OPTIM_WRAPPERS.register_module()
class CPUBF16AmpOptimWrapper(OptimWrapper):
    """:class:`mmengine.optim.OptimWrapper` whose forward runs under CPU bf16 autocast.

    Takes the arguments of ``OptimWrapper`` (``optimizer``, ``accumulative_counts``,
    ``clip_grad``). Registered in mmengine's ``OPTIM_WRAPPERS``, so mmpretrain, mmseg and mmdet
    configs find it as ``optim_wrapper = dict(type='CPUBF16AmpOptimWrapper', ...)``.
    """

    cast_dtype = torch.bfloat16

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not native_bf16():
            print_log('[visionllama_mm] CPUBF16AmpOptimWrapper: this CPU has no bf16 matmul '
                      'instructions (oneDNN finds neither AVX512-BF16 nor AMX), so bf16 autocast '
                      'emulates them and trains several times slower than fp32 (measured 6.5x on '
                      'an AVX2-only CPU); train without --amp here', logger='current',
                      level=logging.WARNING)

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Gradient-accumulation context of ``OptimWrapper`` plus ``torch.autocast('cpu', bf16)``."""
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield

    def load_state_dict(self, state_dict: dict) -> None:
        """Load an optimizer state; the loss-scaler state of a GPU ``AmpOptimWrapper`` checkpoint
        (resumed here) is dropped, with a message, since bf16 uses no loss scaling."""
        if 'loss_scaler' in state_dict:
            state_dict = {k: v for k, v in state_dict.items() if k != 'loss_scaler'}
            print_log('[visionllama_mm] CPUBF16AmpOptimWrapper: the checkpoint\'s fp16 loss-scaler '
                      'state is not used (bf16 autocast needs no loss scaling)', logger='current')
        super().load_state_dict(state_dict)
