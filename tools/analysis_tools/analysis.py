"""Model complexity and throughput: the measuring code of get_flops.py and benchmark.py (and of
tools/gpu_check/bench_table.py), imported as ``tools.analysis_tools.analysis``."""
import copy
import importlib.util
import inspect
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config

from visionllama_mm.models.builder import build_model_from_cfg

__all__ = ['default_input_shape', 'count_complexity', 'benchmark_models',
           'build_references', 'format_benchmark', 'load_reference_file', 'variant_config',
           'benchmark_causal_lm', 'build_hf_llama', 'format_causal_lm_benchmark', 'add_compiled',
           'ratio_lines']


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


def best_times(runners, precisions: Sequence[str], iters: int, warmup: int, repeats: int,
               device: Optional[torch.device] = None,
               modes: Sequence[str] = ('fwd', 'fwd+bwd')) -> Dict[tuple, float]:
    """Time ``runners`` ``[(name, precision, mode, fn)]`` (``mode`` one of ``modes``):
    ``{(name, precision, mode): best seconds for iters calls}`` over ``repeats`` rounds.

    Each measurement is ``torch.utils.benchmark.Timer.timeit(iters)`` (accelerator synchronised,
    this process's thread count, two untimed calls of its own first); ``warmup`` more untimed
    calls of every runner come before the first round (they also build RoPE caches and
    oneDNN/cuDNN plans, and compile the compiled twins). The rounds loop stays ours: a Timer
    measures one statement at a time, and the rounds alternate between the runners so that a
    slow-down of a shared machine hits all of them alike. ``device`` is not needed (kept for
    callers that pass it)."""
    from torch.utils.benchmark import Timer  # imports cpp_extension, which logs about CUDA_HOME
    threads = torch.get_num_threads()
    timers = {(name, p, m): Timer('fn()', globals=dict(fn=fn), num_threads=threads)
              for name, p, m, fn in runners}
    if warmup:
        for timer in timers.values():
            timer.timeit(warmup)
    best = {}
    for _ in range(repeats):
        for precision in precisions:
            for mode in modes:
                for key, timer in timers.items():
                    if key[1:] == (precision, mode):
                        seconds = timer.timeit(iters).raw_times[0]
                        best[key] = min(best.get(key, float('inf')), seconds)
    return best


def add_compiled(models: Sequence[Tuple[str, nn.Module]], options: Optional[dict] = None,
                 part=None) -> List[Tuple[str, nn.Module]]:
    """``models`` followed by a compiled twin of each, named ``'<name> compiled'``: a deep copy
    (same weights) whose ``__call__`` is ``torch.compile``-d in place (``nn.Module.compile``), so
    attribute access and methods behave as on the eager model. ``part(model)`` picks the
    sub-module to compile (e.g. the decoder under a sampling loop); default the model itself."""
    twins = []
    for name, model in models:
        twin = copy.deepcopy(model)
        (part(twin) if part is not None else twin).compile(**(options or {}))
        twins.append((f'{name} compiled', twin))
    return [*models, *twins]


def ratio_lines(rows: List[Dict], cols: Sequence[str], width: int) -> List[str]:
    """Ratio lines of a benchmark table whose first row is ours: ours / each reference (eager to
    eager, compiled to compiled), then compiled / eager of every model that has a twin."""
    names = [r['name'] for r in rows]
    compiled = {n for n in names if n.endswith(' compiled') and n[:-9] in names}
    by_name = {r['name']: r for r in rows}
    ours = rows[0]['name']
    pairs = [(ours, n) for n in names[1:] if n not in compiled]
    if f'{ours} compiled' in compiled:
        pairs += [(f'{ours} compiled', n) for n in names if n in compiled and n[:-9] != ours]
    lines = [f'{a.replace(ours, "ours", 1) + " / " + b:{width + 10}s} '
             + ' '.join(f'{by_name[a][c] / by_name[b][c]:12.3f}x' for c in cols)
             for a, b in pairs]
    lines += [f'{"compiled / eager " + n[:-9]:{width + 10}s} '
              + ' '.join(f'{by_name[n][c] / by_name[n[:-9]][c]:12.3f}x' for c in cols)
              for n in names if n in compiled]
    return lines


def load_reference_file(path: str):
    """Import a user's python file of model factories (e.g. an official repository's
    ``models.py``) as a module.

    The file's folder is put first on ``sys.path`` while it is imported, so that its own
    sibling imports (``from utils import ...``) resolve, and removed afterwards.
    """
    path = osp.abspath(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'--reference-file: no such file {path}')
    name = '_benchmark_reference_' + osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # registries (e.g. timm's register_model) look the module up
    folder = osp.dirname(path)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module


def _build_reference(module, name: str, **kwargs) -> nn.Module:
    factory = getattr(module, name, None)
    if not callable(factory):
        found = sorted(k for k, v in vars(module).items()
                       if callable(v) and not isinstance(v, type) and not k.startswith('_')
                       and getattr(v, '__module__', None) == module.__name__)
        raise ValueError(f'--reference-model {name!r} is not a function of {module.__file__}; '
                         f'its functions: {", ".join(found)}')
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return factory(**kwargs)


_DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def build_references(cfg: Config, timm_names: Sequence[str] = (),
                     reference_file: Optional[str] = None, reference_models: Sequence[str] = (),
                     shape=None, variants: Sequence[Tuple[str, Dict]] = ()
                     ) -> List[Tuple[str, nn.Module]]:
    """``(name, model)`` of each reference: timm models by name (ViTs built for the input size),
    the factories ``reference_models`` of a user's python file, and ``variants``: ``(name,
    {key: value})`` the same config with those ``--cfg-options``-style overrides (e.g. FCMAE's
    masked-dense encoder beside the sparse one).

    Every reference gets the config head's ``num_classes`` and the config backbone's
    ``drop_path_rate`` (factories: those of the two they accept), so that stochastic depth, which
    costs time in training mode, is the same for all models."""
    if bool(reference_models) != bool(reference_file):
        raise ValueError('--reference-file and --reference-model go together: the file defines '
                         'the model factories that --reference-model names')
    h, w = _shape(cfg, shape)
    common = dict(num_classes=cfg.model.get('head', {}).get('num_classes', 1000),
                  drop_path_rate=cfg.model.get('backbone', {}).get('drop_path_rate', 0.))
    refs = []
    for timm_name in timm_names:
        import timm
        kwargs = dict(img_size=(h, w)) if 'vit' in timm_name else {}
        refs.append((f'timm:{timm_name}', timm.create_model(
            timm_name, pretrained=False, **common, **kwargs)))
    if reference_file:
        module = load_reference_file(reference_file)
        for name in reference_models:
            refs.append((f'{osp.basename(reference_file)}:{name}',
                         _build_reference(module, name, **common)))
    for name, options in variants:
        refs.append((name, build_model_from_cfg(variant_config(cfg, options), init=False)))
    return refs


def variant_config(cfg: Config, options: Dict) -> Config:
    """A copy of ``cfg`` with ``--cfg-options``-style ``{key: value}`` overrides."""
    variant = Config(copy.deepcopy(cfg._cfg_dict.to_dict()))
    variant.merge_from_dict(options)
    return variant


def benchmark_models(cfg: Config, references: Sequence[Tuple[str, nn.Module]] = (),
                     batch_size: int = 32, shape=None, iters: int = 10, warmup: int = 3,
                     repeats: int = 3, precisions: Sequence[str] = ('fp32', 'bf16'),
                     channels_last: bool = False, device: Optional[str] = None,
                     memory: bool = False, memory_cfgs: Optional[Dict[str, Config]] = None,
                     compile: Optional[dict] = None,
                     modes: Sequence[str] = ('fwd', 'fwd+bwd')) -> List[Dict]:
    """Images/s of forward (no grad) and forward+backward of ``cfg.model`` and reference models
    (``(name, model)`` pairs, see :func:`build_references`), in each precision (``'fp32'``, or
    autocast ``'bf16'`` / ``'fp16'``).

    Every model sees the same input and the same warm-up; then, for ``repeats`` rounds, each
    (precision, mode) is timed for every model in turn (so a slow-down of a shared machine hits
    all of them alike), and the best round is kept.

    ``compile`` (a dict of ``torch.compile`` options, ``{}`` for the defaults) adds a compiled
    twin of every model (:func:`add_compiled`), measured in the same rounds. ``modes`` picks the
    measured steps (``'fwd'``, ``'fwd+bwd'``); a compiled twin compiles only those it runs.

    ``memory=True`` adds the peak memory of one forward+backward step per model and precision,
    ``'{precision} peak MiB'``: on CUDA the allocator's peak; on CPU the growth of the resident
    set during a step, in a fresh process that builds the model from its config (``cfg`` for
    ours, ``memory_cfgs`` ``{name: config}`` for config variants; other references: CUDA only).

    Returns:
        One dict per model, ours first: ``name``, ``params``, and ``'{precision} fwd'`` /
        ``'{precision} fwd+bwd'`` images/s (and ``'{precision} peak MiB'``).
    """
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    for p in precisions:
        if p not in _DTYPES:
            raise ValueError(f'precision {p!r} is not one of {sorted(_DTYPES)}')
    h, w = _shape(cfg, shape)
    models = [(cfg.model.get('backbone', {}).get('type', cfg.model['type']),
               build_model_from_cfg(cfg, init=False)), *references]
    if compile is not None:
        models = add_compiled(models, compile)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch_size, 3, h, w, device=device).contiguous(memory_format=memory_format)

    runners = []
    for name, model in models:
        model = model.to(device).to(memory_format=memory_format)
        fwd_fn = _tensor_forward(model)
        for precision in precisions:
            dtype = _DTYPES[precision]

            def forward(model=model, fwd_fn=fwd_fn, dtype=dtype):
                model.eval()
                with torch.no_grad(), torch.autocast(device.type, dtype=dtype,
                                                     enabled=dtype is not None):
                    fwd_fn(x)

            def train_step(model=model, fwd_fn=fwd_fn, dtype=dtype):
                model.train()
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    loss = _sum_outputs(fwd_fn(x))
                loss.backward()
                model.zero_grad(set_to_none=True)

            runners += [r for r in ((name, precision, 'fwd', forward),
                                    (name, precision, 'fwd+bwd', train_step)) if r[2] in modes]

    best = best_times(runners, precisions, iters, warmup, repeats, device, modes)
    rows = []
    for name, model in models:
        row = dict(name=name, params=sum(p.numel() for p in model.parameters()))
        for precision in precisions:
            for mode in modes:
                row[f'{precision} {mode}'] = batch_size * iters / best[name, precision, mode]
        rows.append(row)
    if memory:
        cfgs = {models[0][0]: cfg, **(memory_cfgs or {})}
        for row in rows:
            for n, p, m, fn in runners:
                if n != row['name'] or m != 'fwd+bwd':
                    continue
                if device.type == 'cuda':
                    row[f'{p} peak MiB'] = _peak_memory_cuda(fn, device)
                elif n in cfgs:
                    row[f'{p} peak MiB'] = _peak_memory_cpu(cfgs[n]._cfg_dict.to_dict(),
                                                            batch_size, (h, w), _DTYPES[p])
                else:  # timm / reference-file models: measured on CUDA only
                    row[f'{p} peak MiB'] = float('nan')
    return rows


def _peak_memory_cuda(step, device: torch.device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20


def _rss_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ':'))


def _memory_child(cfg_dict: dict, batch_size: int, hw: tuple, dtype, queue) -> None:
    """In a fresh process: build the model and input, reset the resident-set high-water mark
    (``/proc/self/clear_refs``), run one training step and report how far the mark rose."""
    import visionllama_mm  # noqa: F401  (registries)
    model = build_model_from_cfg(Config(cfg_dict), init=False).train()
    fwd_fn = _tensor_forward(model)
    x = torch.randn(batch_size, 3, *hw)
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # VmHWM := VmRSS
    base = _rss_kib('VmRSS')
    with torch.autocast('cpu', dtype=dtype, enabled=dtype is not None):
        loss = _sum_outputs(fwd_fn(x))
    loss.backward()
    queue.put((_rss_kib('VmHWM') - base) / 1024)


def _peak_memory_cpu(cfg_dict: dict, batch_size: int, hw: tuple, dtype) -> float:
    """Peak MiB of a training step of a config-built model, in a spawned process (a forked one
    would hang in OpenMP; measuring in this process would see its other models)."""
    import multiprocessing as mp
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_memory_child, args=(cfg_dict, batch_size, hw, dtype, queue))
    proc.start()
    proc.join()
    return queue.get() if not queue.empty() else float('nan')


def format_benchmark(rows: List[Dict], precisions: Sequence[str]) -> str:
    """The benchmark table: images/s per model and column, then the ratios of the first model
    (ours) to each reference, and of each precision to fp32 for every model."""
    cols = [f'{p} {m}' for p in precisions for m in ('fwd', 'fwd+bwd')]
    cols += [f'{p} peak MiB' for p in precisions if f'{p} peak MiB' in rows[0]]
    width = max(len(r['name']) for r in rows)
    lines = [f'{"model":{width}s} {"params(M)":>9s} ' + ' '.join(f'{c:>13s}' for c in cols)]
    for r in rows:
        lines.append(f'{r["name"]:{width}s} {r["params"] / 1e6:9.2f} '
                     + ' '.join(f'{r[c]:13.2f}' for c in cols))
    lines += ratio_lines(rows, cols, width)
    if any('peak MiB' in c for c in cols):
        lines.append('(throughput ratios > 1 and peak-memory ratios < 1 favour ours)')
    others = [p for p in precisions if p != 'fp32']
    if 'fp32' in precisions and others:
        for r in rows:
            lines.append(f'{r["name"]:{width}s} ' + ', '.join(
                f'{p}/fp32 {m} {r[f"{p} {m}"] / r[f"fp32 {m}"]:.3f}x'
                for p in others for m in ('fwd', 'fwd+bwd')))
    return '\n'.join(lines)


# ------------------------------------------------------------------------ causal LMs (LVM)
def build_hf_llama(decoder: nn.Module) -> nn.Module:
    """transformers' ``LlamaForCausalLM`` with the dims of an :class:`LLaMADecoder` and its
    weights (the state-dict names are the same), SDPA attention: the speed reference of LVM."""
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(
        vocab_size=decoder.vocab_size, hidden_size=decoder.embed_dims,
        intermediate_size=decoder.feedforward_channels, num_hidden_layers=decoder.num_layers,
        num_attention_heads=decoder.num_heads, num_key_value_heads=decoder.num_heads,
        rms_norm_eps=decoder.model.norm.eps, rope_theta=decoder.rope.theta,
        tie_word_embeddings=False, attn_implementation='sdpa', max_position_embeddings=4096)
    model = LlamaForCausalLM(cfg)
    model.load_state_dict(decoder.state_dict())
    return model


def benchmark_causal_lm(cfg: Config, batch_size: int = 4, seq_len: int = 512,
                        gen_batch: int = 1, gen_prompt: int = 256, gen_new: int = 256,
                        iters: int = 3, warmup: int = 1, repeats: int = 3,
                        precisions: Sequence[str] = ('fp32', 'bf16'),
                        device: Optional[str] = None, reference: bool = True,
                        compile: Optional[dict] = None,
                        modes: Sequence[str] = ('train', 'generate')) -> List[Dict]:
    """Tokens/s of an LVM config's training step and KV-cache sampling, beside transformers'
    ``LlamaForCausalLM`` (SDPA) with the same dims and weights, measured alternately.

    * ``train``: forward+backward of each model's own loss on (B, seq_len) tokens (ours:
      ``mode='loss'``; transformers: ``labels=``), ``batch_size * seq_len`` tokens per step.
    * ``generate``: ``gen_new`` sampled tokens after a ``gen_prompt``-token prompt (ours:
      :meth:`LVM.generate`; transformers: ``generate`` with the same top-k 50, the special ids
      suppressed and exactly ``gen_new`` tokens), ``gen_batch * gen_new`` tokens per call.

    ``compile`` (``torch.compile`` options) adds a compiled twin of each model whose decoder
    (ours: ``backbone``, with its head; transformers: ``model``) is compiled, so sampling calls it
    compiled too; ours samples with its preallocated KV cache, transformers' compiled twin with
    its static cache (``cache_implementation='static'``), each decoding step one graph.
    ``modes`` picks the measured calls (``'train'``, ``'generate'``).

    Returns one dict per model (ours first): ``name``, ``params`` and ``'{precision} train'`` /
    ``'{precision} generate'`` tokens/s.
    """
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    model = build_model_from_cfg(cfg, init=False).to(device)
    vocab, codes = model.backbone.vocab_size, model.num_codes
    models = [('LVM', model)]
    if reference:
        models.append(('LlamaForCausalLM', build_hf_llama(model.backbone).to(device)))
    if compile is not None:
        models = add_compiled(models, compile,
                              part=lambda m: m.backbone if hasattr(m, 'backbone') else m.model)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, codes, (batch_size, seq_len + 1), generator=g).to(device)
    prompt = torch.randint(0, codes, (gen_batch, gen_prompt), generator=g).to(device)

    def runs(name, m, dtype):
        ac = dict(device_type=device.type, dtype=dtype, enabled=dtype is not None)

        def train():
            m.train()
            with torch.autocast(**ac):
                if name.startswith('LVM'):
                    loss = m(ids, mode='loss')['loss']
                else:
                    loss = m(input_ids=ids[:, :-1], labels=ids[:, :-1]).loss
            loss.backward()
            m.zero_grad(set_to_none=True)

        def generate():
            m.eval()
            with torch.no_grad(), torch.autocast(**ac):
                if name.startswith('LVM'):
                    m.generate(prompt, gen_new, top_k=50)
                else:  # transformers; its compiled twin with its static cache
                    m.generate(prompt, do_sample=True, top_k=50, max_new_tokens=gen_new,
                               min_new_tokens=gen_new, suppress_tokens=list(range(codes, vocab)),
                               pad_token_id=codes, cache_implementation=(
                                   'static' if name.endswith(' compiled') else None))
        return {'train': train, 'generate': generate}

    runners = [(n, p, mode, fn) for n, m in models for p in precisions
               for mode, fn in runs(n, m, _DTYPES[p]).items() if mode in modes]
    best = best_times(runners, precisions, iters, warmup, repeats, device, modes)
    per_call = {'train': batch_size * seq_len, 'generate': gen_batch * gen_new}
    rows = []
    for n, m in models:
        row = dict(name=n, params=sum(p.numel() for p in m.parameters()))
        for p in precisions:
            for mode in modes:
                row[f'{p} {mode}'] = per_call[mode] * iters / best[n, p, mode]
        rows.append(row)
    return rows


def format_causal_lm_benchmark(rows: List[Dict], precisions: Sequence[str]) -> str:
    """Tokens/s table of :func:`benchmark_causal_lm`, then ours / reference."""
    cols = [f'{p} {m}' for p in precisions for m in ('train', 'generate')]
    width = max(len(r['name']) for r in rows)
    lines = [f'{"model":{width}s} {"params(M)":>9s} ' + ' '.join(f'{c:>14s}' for c in cols)]
    for r in rows:
        lines.append(f'{r["name"]:{width}s} {r["params"] / 1e6:9.2f} '
                     + ' '.join(f'{r[c]:14.1f}' for c in cols))
    lines += ratio_lines(rows, cols, width)
    return '\n'.join(lines)
