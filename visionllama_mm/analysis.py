"""Model complexity and throughput, used by tools/analysis_tools/get_flops.py and benchmark.py."""
import importlib
import time
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.config import Config

__all__ = ['build_model_from_cfg', 'default_input_shape', 'count_complexity', 'benchmark_models']


def build_model_from_cfg(cfg: Config, init: bool = True) -> nn.Module:
    """Build ``cfg.model`` with the MODELS registry of the config's toolbox.

    ``init=False`` skips ``init_weights`` (no pretrained files are read; the constructors' own
    random initialisation stays), which is all that FLOP counting and benchmarking need.
    """
    from mmengine.registry import init_default_scope

    from .engine.launch import toolbox_of
    scope = toolbox_of(cfg)
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model = registry.build(cfg.model)
    if init and hasattr(model, 'init_weights'):
        model.init_weights()
    return model


def default_input_shape(cfg: Config) -> tuple:
    """(H, W) the config's model is meant for: crop_size, else backbone img_size, else 224."""
    size = cfg.get('crop_size') or cfg.model.get('backbone', {}).get('img_size') or 224
    if isinstance(size, int):
        return (size, size)
    return tuple(size)


def _shape(cfg: Config, shape: Optional[Sequence[int]]) -> tuple:
    if not shape:
        return default_input_shape(cfg)
    if len(shape) == 1:
        return (shape[0], shape[0])
    if len(shape) == 2:
        return tuple(shape)
    raise ValueError(f'--shape takes one or two ints, got {list(shape)}')


def _sdpa_flop_jit(inputs, outputs):
    """MACs of F.scaled_dot_product_attention: q k^T and attn v."""
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = 1
    for d in q[:-2]:
        batch *= d
    return batch * q[-2] * k[-2] * q[-1] + batch * q[-2] * k[-2] * v[-1]


def _det_samples(x: torch.Tensor) -> list:
    """Data samples with the image metadata mmdet's tensor path reads (no annotations)."""
    from mmdet.structures import DetDataSample
    h, w = x.shape[-2:]
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                scale_factor=(1., 1.))
    return [DetDataSample(metainfo=meta) for _ in range(x.shape[0])]


def _tensor_forward(model: nn.Module):
    """A callable ``f(x)`` running the model's plain tensor path (mmdet models get metadata)."""
    if hasattr(model, 'data_preprocessor') and 'mode' in model.forward.__code__.co_varnames:
        if type(model).__module__.startswith('mmdet.'):
            return lambda x: model(x, _det_samples(x), mode='tensor')
        return lambda x: model(x, mode='tensor')
    return model


def count_complexity(cfg: Config, shape=None, batch_size: int = 1) -> Dict:
    """Params and FLOPs (MACs) of ``cfg.model`` for an input of ``shape``."""
    from mmengine.analysis import FlopAnalyzer

    model = build_model_from_cfg(cfg, init=False)
    model.eval()
    h, w = _shape(cfg, shape)
    x = torch.randn(batch_size, 3, h, w)

    class _Wrap(nn.Module):

        def __init__(self, m):
            super().__init__()
            self.m = m
            self.f = _tensor_forward(m)

        def forward(self, inp):
            return self.f(inp)

    analyzer = FlopAnalyzer(_Wrap(model), (x, ))
    analyzer.set_op_handle(**{'aten::scaled_dot_product_attention': _sdpa_flop_jit})
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    flops = analyzer.total()
    uncounted = sorted(analyzer.unsupported_ops().keys())
    params = sum(p.numel() for p in model.parameters())
    return dict(params=params, flops=flops, input_shape=(batch_size, 3, h, w), uncounted=uncounted)


def _sum_outputs(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out.float().sum()
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return sum(_sum_outputs(o) for o in out)
    raise TypeError(f'cannot reduce model output of type {type(out)}')


def _time(fn, iters: int, device: torch.device) -> float:
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


def benchmark_models(cfg: Config, timm_name: Optional[str] = None, batch_size: int = 32,
                     shape=None, iters: int = 10, warmup: int = 3, repeats: int = 3,
                     amp: Optional[str] = None, channels_last: bool = False,
                     device: Optional[str] = None) -> List[Dict]:
    """Images/s of forward (no grad) and forward+backward for ``cfg.model`` (and a timm model).

    Measurements alternate between the models for ``repeats`` rounds; the best round is kept.
    """
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    h, w = _shape(cfg, shape)
    models = [(cfg.model.get('backbone', {}).get('type', cfg.model['type']),
               build_model_from_cfg(cfg, init=False))]
    if timm_name:
        import timm
        num_classes = cfg.model.get('head', {}).get('num_classes', 1000)
        models.append((f'timm:{timm_name}',
                       timm.create_model(timm_name, pretrained=False, num_classes=num_classes,
                                         img_size=(h, w)) if 'vit' in timm_name else
                       timm.create_model(timm_name, pretrained=False, num_classes=num_classes)))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch_size, 3, h, w, device=device).contiguous(memory_format=memory_format)
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16, None: None}[amp]

    runners = []
    for name, model in models:
        model = model.to(device).to(memory_format=memory_format)
        fwd_fn = _tensor_forward(model)

        def forward(model=model, fwd_fn=fwd_fn):
            model.eval()
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                fwd_fn(x)

        def train_step(model=model, fwd_fn=fwd_fn):
            model.train()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = _sum_outputs(fwd_fn(x))
            loss.backward()
            model.zero_grad(set_to_none=True)

        runners.append(dict(name=name, model=model, forward=forward, train=train_step))

    for r in runners:  # warm-up (also builds RoPE caches, cudnn plans)
        for _ in range(warmup):
            r['forward']()
            r['train']()
    best = {(i, mode): float('inf') for i in range(len(runners)) for mode in ('forward', 'train')}
    for _ in range(repeats):
        for i, r in enumerate(runners):
            for mode in ('forward', 'train'):
                best[i, mode] = min(best[i, mode], _time(r[mode], iters, device))
    return [dict(name=r['name'], params=sum(p.numel() for p in r['model'].parameters()),
                 forward=batch_size * iters / best[i, 'forward'],
                 train=batch_size * iters / best[i, 'train']) for i, r in enumerate(runners)]
