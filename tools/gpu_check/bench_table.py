"""The GPU benchmark table: each model of the package beside its reference, bf16, eager and
compiled, in one markdown table with the speed targets marked met or missed.

    python tools/gpu_check/bench_table.py --out DIR [--device cuda|cpu] [--tiny]
        [--budget SECONDS] [--only PAIR ...] [--compile-pairs PAIR ...]

Pairs (ours / reference, the config file each model is built from):

* ``visionllama``: VisionLLaMA-B (plain) / timm ``vit_base_patch16_224``
* ``pyramid``: pyramid VisionLLaMA-B / timm ``twins_svt_base``
* ``convnextv2``: ConvNeXt V2-B / timm ``convnextv2_base``
* ``vitamin``: ViTamin-B / timm ``vitamin_base_224``
* ``dit``: DiT-LLaMA-XL/2 / the official layout (``tools/analysis_tools/dit_official_models.py``)
* ``llama``: the LVM LLaMA decoder (300m widths) / transformers' ``LlamaForCausalLM``
* ``fcmae``: the sparse FCMAE ConvNeXt V2-B encoder / the same config's masked-dense encoder

Every model is built from the config (``visionllama_mm.models.builder``) at its real widths with
fewer blocks (the depth is stated in the table; the reference gets the same depth), because compiling
fourteen full-size models takes longer than the few minutes this step has. Measured: the training
step (forward+backward, autocast bf16) in images/s (tokens/s for the decoder), first eager for every
pair, then ``torch.compile``-d (inductor) pair by pair while the budget lasts, each pair's eager and
compiled models timed alternately in the same rounds; peak memory of one step from the CUDA
allocator. The table is rewritten after every pair (``DIR/bench.md``, ``DIR/bench.json``), so a run
stopped by its budget keeps what it measured. ``--tiny`` shrinks every model to a few channels (the
CPU dry run of the test suite; the first pair is compiled with the ``eager`` backend there).
"""
import argparse
import datetime
import json
import os
import os.path as osp
import signal
import sys
import time
import traceback

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:  # tools.analysis_tools (the benchmark's measuring code)
    sys.path.insert(0, ROOT)

# name, title, ours, reference, config, batch, input size, real-width arch overrides (``cfg``),
# the reference's kwargs, depth text, target (ratio of compiled images/s) and the tiny variants
PAIRS = [
    dict(name='visionllama', ours='VisionLLaMA-B', ref='timm vit_base_patch16_224',
         config='configs/visionllama/visionllama-plain-base-p16_8xb256-800e_in1k.py',
         batch=64, size=224, target=1.0,
         cfg={'model.backbone.arch': dict(embed_dims=768, num_layers=4, num_heads=12,
                                          feedforward_channels=2048),
              'model.backbone.img_size': 224},
         timm=('vit_base_patch16_224', dict(depth=4)), depth='4 of 12 blocks',
         tiny_cfg={'model.backbone.arch': dict(embed_dims=32, num_layers=1, num_heads=2,
                                               feedforward_channels=64),
                   'model.backbone.img_size': 32, 'model.head.in_channels': 32},
         tiny_timm=dict(depth=1, embed_dim=32, num_heads=2)),
    dict(name='pyramid', ours='pyramid VisionLLaMA-B', ref='timm twins_svt_base',
         config='configs/visionllama/visionllama-pyramid-base_8xb128-300e_in1k.py',
         batch=64, size=224, target=1.0,
         cfg={'model.backbone.arch': dict(embed_dims=[96, 192, 384, 768], depths=[1, 1, 6, 1],
                                          num_heads=[3, 6, 12, 24],
                                          feedforward_channels=[256, 512, 1024, 2048])},
         timm=('twins_svt_base', dict(depths=[1, 1, 6, 1])), depth='1-1-6-1 of 2-2-18-2 blocks',
         tiny_cfg={'model.backbone.arch': dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                                               num_heads=[1, 2, 3, 4],
                                               feedforward_channels=[16, 32, 48, 64]),
                   'model.head.in_channels': 32},
         tiny_timm=dict(depths=[1, 1, 1, 1], embed_dims=[8, 16, 24, 32], num_heads=[1, 2, 3, 4])),
    dict(name='convnextv2', ours='ConvNeXt V2-B', ref='timm convnextv2_base',
         config='configs/convnextv2/convnextv2-base_fcmae-pre_32xb32-amp-coslr-100e_in1k.py',
         batch=64, size=224, target=1.0,
         cfg={'model.backbone.arch': dict(depths=[1, 1, 9, 1], channels=[128, 256, 512, 1024])},
         timm=('convnextv2_base', dict(depths=[1, 1, 9, 1])), depth='1-1-9-1 of 3-3-27-3 blocks',
         tiny_cfg={'model.backbone.arch': dict(depths=[1, 1, 1, 1], channels=[8, 16, 24, 32]),
                   'model.head.in_channels': 32},
         tiny_timm=dict(depths=[1, 1, 1, 1], dims=[8, 16, 24, 32])),
    dict(name='vitamin', ours='ViTamin-B', ref='timm vitamin_base_224',
         config='configs/vitamin/vitamin-base_clip-pre_8xb256-amp-coslr-50e_in1k.py',
         batch=64, size=224, target=1.0,
         cfg={'model.backbone.arch': dict(stem_channels=128, channels=(128, 256), depths=(2, 4),
                                          embed_dims=768, num_layers=5, num_heads=12)},
         timm=('vitamin_base_224', dict(depth=5)),
         depth='MBConv 2-4 and 5 of 14 transformer blocks',
         tiny_cfg={'model.backbone.arch': dict(stem_channels=8, channels=(8, 16), depths=(1, 1),
                                               embed_dims=32, num_layers=1, num_heads=2),
                   'model.head.in_channels': 32},
         tiny_timm='vitamin'),
    dict(name='dit', ours='DiT-LLaMA-XL/2', ref='official DiT-LLaMA layout', kind='denoiser',
         config='configs/dit_llama/dit_llama-xl-p2_8xb32-400k_in1k-256px.py',
         batch=32, size=32, target=1.2,
         cfg={'model.denoiser.arch': dict(embed_dims=1152, num_layers=7, num_heads=16)},
         depth='7 of 28 blocks',
         tiny_cfg={'model.denoiser.arch': dict(embed_dims=32, num_layers=1, num_heads=2),
                   'model.denoiser.input_size': 8, 'model.denoiser.num_classes': 10},
         tiny_size=8),
    dict(name='llama', ours='LVM LLaMA decoder (300m widths)', ref="transformers LlamaForCausalLM",
         kind='causal_lm', config='configs/lvm/lvm_llama-300m_8xb4-accum4-400kit_uvd.py',
         batch=4, size=1024, target=None, rounds=dict(iters=5, warmup=2, repeats=2),
         cfg={'model.backbone.arch': dict(embed_dims=1024, feedforward_channels=2688,
                                          num_layers=6, num_heads=8)},
         depth='6 of 22 layers',
         tiny_cfg={'model.backbone.arch': dict(embed_dims=32, feedforward_channels=64, num_layers=1,
                                               num_heads=2)},
         tiny_size=16),
    dict(name='fcmae', ours='FCMAE sparse ConvNeXt V2-B', ref='the same, masked-dense encoder',
         config='configs/convnextv2/fcmae_convnextv2-base_8xb64-accum8-coslr-800e_in1k.py',
         batch=64, size=224, target=1.5, kind='variant',
         cfg={'model.backbone.arch': dict(depths=[1, 1, 9, 1], channels=[128, 256, 512, 1024])},
         depth='1-1-9-1 of 3-3-27-3 blocks',
         tiny_cfg={'model.backbone.arch': dict(depths=[1, 1, 1, 1], channels=[8, 16, 24, 32]),
                   'model.neck.in_channels': 32, 'model.neck.embed_dims': 16},
         tiny_size=64),  # two 32-px mask cells a side: a 60% mask leaves visible cells
]
NAMES = [p['name'] for p in PAIRS]
PRECISION = 'bf16'


class OutOfBudget(Exception):
    pass


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='The GPU benchmark table (bench.md)')
    parser.add_argument('--out', required=True, help='folder for bench.md, bench.json, env.json')
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    parser.add_argument('--tiny', action='store_true',
                        help='a few channels per model (the CPU dry run)')
    parser.add_argument('--budget', type=float, default=180.,
                        help='seconds for the whole step; pairs not reached are marked so')
    parser.add_argument('--only', nargs='+', choices=NAMES, default=NAMES, metavar='PAIR',
                        help=f'pairs to measure, of {", ".join(NAMES)}')
    parser.add_argument('--compile-pairs', nargs='*', choices=NAMES, default=None,
                        metavar='PAIR', help='pairs to compile (default: all; with --tiny the '
                        'first of --only)')
    args = parser.parse_args(argv)
    if args.compile_pairs is None:
        args.compile_pairs = args.only[:1] if args.tiny else list(args.only)
    if args.device == 'cuda':
        import torch
        if not torch.cuda.is_available():
            parser.error('--device cuda: CUDA is not available on this machine (use --device cpu '
                         '--tiny for the dry run)')
    return args


def settings(pair: dict, tiny: bool) -> dict:
    """Batch, input size, timing rounds and the config overrides of a pair."""
    if tiny:
        return dict(batch=2, size=pair.get('tiny_size', 32), iters=1, warmup=1, repeats=1,
                    cfg=pair['tiny_cfg'])
    return dict(batch=pair['batch'], size=pair['size'], cfg=pair['cfg'],
                **pair.get('rounds', dict(iters=10, warmup=3, repeats=3)))


def load_config(pair: dict, overrides: dict):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, pair['config']))
    backbone = cfg.model.get('backbone')
    if isinstance(backbone, dict):  # no stochastic depth, no pretrained weights to read
        overrides = {'model.backbone.init_cfg': None, **overrides}
        if 'drop_path_rate' in backbone:
            overrides = {'model.backbone.drop_path_rate': 0., **overrides}
    for key, value in overrides.items():  # a whole value replaces the config's (arch names)
        *path, last = key.split('.')
        node = cfg
        for k in path:
            node = node[k]
        node[last] = value
    return cfg


def timm_reference(pair: dict, tiny: bool, size: int, num_classes: int):
    import timm
    name, kwargs = pair['timm']
    if tiny and pair['tiny_timm'] == 'vitamin':
        from timm.models.vitamin import VitCfg, VitConvCfg
        kwargs = dict(depth=1, embed_dim=32, num_heads=2, embed_cfg=VitCfg(
            embed_dim=(8, 16, 32), depths=(1, 1, 1), stem_width=8,
            conv_cfg=VitConvCfg(norm_layer='layernorm2d', norm_eps=1e-6), head_type='1d'))
    elif tiny:
        kwargs = pair['tiny_timm']
    if 'vit' in name:
        kwargs = dict(kwargs, img_size=size)
    return f'timm:{name}', timm.create_model(name, pretrained=False, num_classes=num_classes,
                                             drop_path_rate=0., **kwargs)


def peak_memory(step, device) -> float:
    from tools.analysis_tools.analysis import _peak_memory_cuda
    return _peak_memory_cuda(step, device) if device.type == 'cuda' else float('nan')


def measure(pair: dict, device, tiny: bool, compiled: bool) -> dict:
    """One pair: ``{'rows': [{name, params, rate, peak}], 'unit': ...}`` with ours first, then
    the reference, then (``compiled``) their compiled twins."""
    import torch

    from tools.analysis_tools.analysis import (add_compiled, benchmark_causal_lm, benchmark_models,
                                               build_hf_llama, variant_config)
    s = settings(pair, tiny)
    cfg = load_config(pair, s['cfg'])
    options = dict(backend='eager' if tiny else 'inductor') if compiled else None
    kind = pair.get('kind', 'timm')
    timing = dict(iters=s['iters'], warmup=s['warmup'], repeats=s['repeats'])
    if kind in ('timm', 'variant'):
        if kind == 'timm':
            refs = [timm_reference(pair, tiny, s['size'],
                                   cfg.model.get('head', {}).get('num_classes', 1000))]
        else:
            from visionllama_mm.models.builder import build_model_from_cfg
            dense = variant_config(cfg, {'model.backbone.impl': 'masked_dense'})
            refs = [('masked-dense', build_model_from_cfg(dense, init=False))]
        rows = benchmark_models(cfg, refs, batch_size=s['batch'], shape=[s['size']],
                                precisions=[PRECISION], device=str(device),
                                memory=device.type == 'cuda', compile=options,
                                modes=('fwd+bwd', ), **timing)
        return dict(unit='images/s', rows=[dict(name=r['name'], params=r['params'],
                                                rate=r[f'{PRECISION} fwd+bwd'],
                                                peak=r.get(f'{PRECISION} peak MiB', float('nan')))
                                           for r in rows])
    if kind == 'denoiser':
        from tools.analysis_tools.analysis import load_reference_file
        from tools.analysis_tools.benchmark import (benchmark_denoisers, build_denoiser,
                                                    build_dit_reference, official_dit_kwargs)
        ours = build_denoiser(cfg)
        kwargs = official_dit_kwargs(ours)
        module = load_reference_file(osp.join(ROOT, 'tools/analysis_tools/dit_official_models.py'))
        models = [(f'DiTLLaMA({ours.block_type})', ours),
                  ('official DiT_LLaMA', build_dit_reference(module, 'DiT_LLaMA', kwargs))]
        if compiled:
            models = add_compiled(models, options)
        rows = benchmark_denoisers(models, s['batch'], s['size'], ours.in_channels,
                                   kwargs['num_classes'], precisions=[PRECISION], device=device,
                                   modes=('fwd+bwd', ), **timing)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(s['batch'], ours.in_channels, s['size'], s['size'], generator=g).to(device)
        t = torch.randint(0, 1000, (s['batch'], ), generator=g).to(device)
        y = torch.randint(0, kwargs['num_classes'], (s['batch'], ), generator=g).to(device)
        out = []
        for (name, model), r in zip(models, rows):
            def step(model=model):
                model.train()
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    loss = model(x, t, y).float().square().mean()
                loss.backward()
                model.zero_grad(set_to_none=True)
            out.append(dict(name=name, params=r['params'], rate=r[f'{PRECISION} fwd+bwd'],
                            peak=peak_memory(step, device)))
        return dict(unit='images/s', rows=out)
    # causal LM: training tokens/s (and eager sampling tokens/s)
    modes = ('train', ) if compiled else ('train', 'generate')
    gen = dict(gen_batch=1, gen_prompt=8, gen_new=4) if tiny else dict(gen_batch=1, gen_prompt=256,
                                                                       gen_new=64)
    rows = benchmark_causal_lm(cfg, batch_size=s['batch'], seq_len=s['size'],
                               precisions=[PRECISION], device=str(device), compile=options,
                               modes=modes, **gen, **timing)
    out = [dict(name=r['name'], params=r['params'], rate=r[f'{PRECISION} train'],
                generate=r.get(f'{PRECISION} generate'), peak=float('nan')) for r in rows]
    if device.type == 'cuda':  # peak memory of one training step of each eager model
        from visionllama_mm.models.builder import build_model_from_cfg
        model = build_model_from_cfg(cfg, init=False).to(device)
        ids = torch.randint(0, model.num_codes, (s['batch'], s['size'] + 1), device=device)

        def ours_step():
            model.train()
            with torch.autocast('cuda', dtype=torch.bfloat16):
                loss = model(ids, mode='loss')['loss']
            loss.backward()
            model.zero_grad(set_to_none=True)
        out[0]['peak'] = peak_memory(ours_step, device)
        hf = build_hf_llama(model.backbone).to(device)
        del model

        def hf_step():
            hf.train()
            with torch.autocast('cuda', dtype=torch.bfloat16):
                loss = hf(input_ids=ids[:, :-1], labels=ids[:, :-1]).loss
            loss.backward()
            hf.zero_grad(set_to_none=True)
        out[1]['peak'] = peak_memory(hf_step, device)
    return dict(unit='tokens/s', rows=out)


def env_info(device) -> dict:
    import platform

    import torch
    info = dict(torch=torch.__version__, cuda=torch.version.cuda, python=platform.python_version(),
                device=device.type, threads=torch.get_num_threads())
    if device.type == 'cuda':
        info['device_name'] = torch.cuda.get_device_name(device)
        info['capability'] = '.'.join(map(str, torch.cuda.get_device_capability(device)))
    else:
        info['device_name'] = f'CPU ({platform.processor() or platform.machine()}, '\
                              f'{os.cpu_count()} cores)'
    return info


def fmt(value, digits=0) -> str:
    if value is None or value != value:  # None or NaN
        return '-'
    return f'{value:,.{digits}f}'


def verdict(pair: dict, result: dict) -> tuple:
    """(ratio text, compiled peak-memory text, target text, 'met' / 'MISSED' / 'not measured')."""
    rows = {r['name']: r for r in result.get('rows', [])}
    names = [r['name'] for r in result.get('rows', [])]
    if len(names) < 2:
        return '-', '-', '-', 'not measured'
    ours, ref = names[0], names[1]
    eager = rows[ours]['rate'] / rows[ref]['rate']
    twins = f'{ours} compiled' in rows and f'{ref} compiled' in rows
    compiled = rows[f'{ours} compiled']['rate'] / rows[f'{ref} compiled']['rate'] if twins else None
    which = (f'{ours} compiled', f'{ref} compiled') if twins else (ours, ref)
    lighter = (rows[which[1]]['peak'] / rows[which[0]]['peak'] if rows[which[0]]['peak']
               else float('nan'))
    ratio = f'{eager:.2f}x eager' + (f', **{compiled:.2f}x compiled**' if twins else '')
    memory = f'{fmt(rows[which[0]]["peak"])} / {fmt(rows[which[1]]["peak"])}'
    target = pair['target']
    if target is None:
        return ratio, memory, 'none set', '-'
    text = f'>= {target}x compiled' + (' and >= 1.5x lighter' if pair['name'] == 'fcmae' else '')
    if not twins:
        return ratio, memory, text, 'not measured (no compiled run)'
    met = compiled >= target and (pair['name'] != 'fcmae' or lighter >= 1.5)  # NaN: not met
    return ratio, memory, text, 'met' if met else 'MISSED'


def write_table(out: str, env: dict, results: dict, args, started: str) -> str:
    rounds = settings(PAIRS[0], args.tiny)
    llama = settings(PAIRS[NAMES.index('llama')], args.tiny)
    lines = [
        f'# Benchmark table: {env["device_name"]}, {started}', '',
        f'torch {env["torch"]}, CUDA {env["cuda"] or "-"}, Python {env["python"]}. Training step '
        '(forward+backward) under bf16 autocast, images/s (the decoder: tokens/s); best of '
        f'{rounds["repeats"]} rounds x {rounds["iters"]} iterations after {rounds["warmup"]} '
        f'warm-up (the decoder: {llama["repeats"]} x {llama["iters"]} after {llama["warmup"]}), '
        'ours and the reference alternately; compiled: '
        f'torch.compile ({"eager backend" if args.tiny else "inductor, default mode"}) of both, '
        'timed in the same rounds as the eager models. Models at their real widths with fewer '
        'blocks (depth column) so that all compiles fit the step\'s budget'
        + (' (--tiny: a few channels each, a CPU dry run, not a measurement)' if args.tiny else '')
        + '. Peak memory: the CUDA allocator\'s peak during one training step above the weights '
        '(MiB; compiled models where measured).', '',
        '| pair | ours / reference | depth | batch x input | ours eager | ref eager '
        '| ours compiled | ref compiled | ours / ref | peak MiB ours / ref | target | result |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|']
    counts = dict(met=0, missed=0, unmeasured=0)
    for pair in PAIRS:
        if pair['name'] not in args.only:
            continue
        result = results.get(pair['name'], {})
        rows = {r['name']: r for r in result.get('rows', [])}
        names = [r['name'] for r in result.get('rows', [])]
        s = settings(pair, args.tiny)
        shape = (f'{s["batch"]} x {s["size"]} tokens' if pair.get('kind') == 'causal_lm' else
                 f'{s["batch"]} x {s["size"]}^2' + (' latents' if pair.get('kind') == 'denoiser'
                                                    else ''))
        rates = [fmt(rows[n]['rate']) if n in rows else '-' for n in
                 (names[:2] + [f'{n} compiled' for n in names[:2]] if names else [])]
        rates += ['-'] * (4 - len(rates))
        ratio, memory, target, result_text = verdict(pair, result)
        if result.get('error'):
            result_text = f'error: {result["error"]}'
        counts['met' if result_text == 'met' else 'missed' if result_text == 'MISSED' else
               'unmeasured'] += pair['target'] is not None or result_text.startswith('error')
        lines.append(f'| {pair["name"]} | {pair["ours"]} / {pair["ref"]} | {pair["depth"]} | '
                     f'{shape} | ' + ' | '.join(rates) + f' | {ratio} | {memory} | {target} | '
                     f'{result_text} |')
    notes = [f'- {n}: {results[n]["note"]}' for n in args.only if results.get(n, {}).get('note')]
    llama = results.get('llama', {}).get('rows', [])
    if len(llama) >= 2 and llama[0].get('generate'):
        notes.append(f'- llama: KV-cache sampling (eager, batch 1), tokens/s: ours '
                     f'{fmt(llama[0]["generate"])}, transformers {fmt(llama[1]["generate"])} '
                     f'({llama[0]["generate"] / llama[1]["generate"]:.2f}x)')
    if notes:
        lines += ['', 'Notes:', *notes]
    summary = (f'result: {counts["met"]} targets met, {counts["missed"]} missed, '
               f'{counts["unmeasured"]} not measured')
    lines += ['', summary]
    with open(osp.join(out, 'bench.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with open(osp.join(out, 'bench.json'), 'w') as f:
        json.dump(dict(env=env, date=started, tiny=args.tiny, results=results), f, indent=1,
                  default=str)
    return summary


def main(argv=None):
    args = parse_args(argv)
    deadline = time.monotonic() + args.budget
    os.makedirs(args.out, exist_ok=True)
    import torch

    import visionllama_mm  # noqa: F401  (registries)
    device = torch.device(args.device)
    env = env_info(device)
    with open(osp.join(args.out, 'env.json'), 'w') as f:
        json.dump(env, f, indent=1)
    started = datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')

    def out_of_budget(signum, frame):
        raise OutOfBudget()

    signal.signal(signal.SIGALRM, out_of_budget)
    results = {}
    # eager first (cheap), then the compiled twins pair by pair while the budget lasts
    passes = [(name, False) for name in args.only]
    passes += [(name, True) for name in args.only if name in args.compile_pairs]
    for name, compiled in passes:
        pair = PAIRS[NAMES.index(name)]
        left = deadline - time.monotonic()
        label = f'{name} {"compiled" if compiled else "eager"}'
        if left < 2:
            results.setdefault(name, {})['note'] = (f'{"compiled run" if compiled else "not"} '
                                                    f'measured: the {args.budget:.0f} s budget '
                                                    'ran out before it')
            continue
        print(f'[bench] {label} ({left:.0f} s left)', flush=True)
        start = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, left)
        try:
            result = measure(pair, device, args.tiny, compiled)
            eager = {r['name']: r for r in results.get(name, {}).get('rows', [])}
            for row in result['rows']:  # sampling is measured in the eager pass only
                if row.get('generate') is None and 'generate' in eager.get(row['name'], {}):
                    row['generate'] = eager[row['name']]['generate']
            results[name] = dict(result, seconds=round(time.monotonic() - start, 1),
                                 note=results.get(name, {}).get('note'))
        except OutOfBudget:
            results.setdefault(name, {})['note'] = (
                f'{"compiled run" if compiled else "run"} stopped by the {args.budget:.0f} s '
                f'budget after {time.monotonic() - start:.0f} s')
        except Exception as err:  # one failing pair must not hide the others
            traceback.print_exc()
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ''
            msg = f'{type(err).__name__}: {first}'
            if compiled and results.get(name, {}).get('rows'):
                results[name]['note'] = f'compiled run failed: {msg}'
            else:
                results[name] = dict(error=msg)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if device.type == 'cuda':
                torch.cuda.empty_cache()
        print(f'[bench] {label}: {time.monotonic() - start:.1f} s', flush=True)
        write_table(args.out, env, results, args, started)
    summary = write_table(args.out, env, results, args, started)
    print(open(osp.join(args.out, 'bench.md')).read())
    print(summary)
    return 1 if any(r.get('error') for r in results.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
