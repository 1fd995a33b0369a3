"""``tools/gpu_check/train_checks.py --device cpu --tiny``: the dry run of the GPU acceptance
checks. Every family's shipped config, shrunk, trains 3 iterations through the Runner in fp16 and
bf16 autocast (with a loss scaler) and compiled (dynamo's eager backend; inductor for VisionLLaMA
plain: each family's inductor / aot_eager equality with eager is the subject of its own
``*_compile`` test), the compiled losses agree with eager within the documented tolerance, the
fused-attention restriction holds on the eager bf16 run and records its SDPA calls, and Mask R-CNN
and UperNet train one iteration on mmcv's CPU ops."""
import json
import math

from ..conftest import run_tool

FAMILIES = ['visionllama_plain', 'visionllama_pyramid', 'visionllama_mae', 'convnextv2',
            'convnextv2_fcmae', 'vitamin', 'vitamin_clip', 'lvm', 'vqgan', 'dit_llama',
            'sit_llama']


def test_cpu_dry_run_of_every_check(python, tmp_path):
    out = tmp_path / 'check'
    log = run_tool([python, 'tools/gpu_check/train_checks.py', '--device', 'cpu', '--tiny',
                    '--out', str(out)], timeout=900)
    report = json.loads((out / 'train_checks.json').read_text())
    assert report['ok'] and not report['failed'] and not report['skipped'], log[-4000:]
    assert list(report['families']) == FAMILIES
    for name, fam in report['families'].items():
        runs = fam['runs']
        for mode in ('fp16', 'bf16', 'compiled_bf16'):
            losses = runs[mode]['losses']
            assert len(losses) == 3 and all(map(math.isfinite, losses)), (name, mode, losses)
        # fp16 trains with a dynamic loss scaler (2^16 at the start, halved on an overflow)
        assert runs['fp16']['loss_scale'][0] in (2.0 ** 16, 2.0 ** 15), name
        assert runs['compiled_bf16']['backend'] == (
            'inductor' if name == 'visionllama_plain' else 'eager')
        cmp = fam['compiled_vs_eager']
        assert cmp['ok'] and cmp['rel_diff'][0] <= cmp['rtol'] == 2e-2, (name, cmp)
        assert max(cmp['rel_diff']) <= cmp['rtol_later'], (name, cmp)
        # eager fp16 and bf16 compute the same first loss up to their rounding
        assert abs(runs['fp16']['losses'][0] - runs['bf16']['losses'][0]) <= (
            0.05 * abs(runs['bf16']['losses'][0])), name
        sdpa = fam['sdpa']
        assert sdpa['dry_run'] and 'sdpa_calls' in runs['bf16']
        if name in ('convnextv2', 'convnextv2_fcmae', 'vqgan'):
            assert sdpa['calls'] == [], (name, sdpa)  # no attention in these models
        else:
            assert sdpa['ok'] and sdpa['calls'], (name, sdpa)
    calls = {n: ' '.join(f['sdpa']['calls']) for n, f in report['families'].items()}
    # head widths of the shipped models: 64 (ViT-B/L, ViTamin, CLIP text, LLaMA-100M),
    # 32 (pyramid, MAE decoder), 72 (DiT-LLaMA-XL); causal text and decoder attention
    assert 'head_dim 64' in calls['visionllama_plain'] and 'head_dim 32' in calls['visionllama_mae']
    assert 'head_dim 72' in calls['dit_llama'] and 'head_dim 32' in calls['visionllama_pyramid']
    assert 'causal' in calls['vitamin_clip'] and 'causal' in calls['lvm']
    assert 'bool mask' in calls['lvm']  # the KV-cache decoding steps
    dense = report['dense']
    assert dense['ok'] and set(dense['runs']) == {'mask_rcnn', 'upernet'}
    for run in dense['runs'].values():
        assert run['iterations'] == 1 and math.isfinite(run['losses'][0]), run
    table = (out / 'train_checks.md').read_text()
    assert all(f'| {name} |' in table for name in FAMILIES)
    assert (out / 'logs' / 'lvm' / 'compiled_bf16' / 'console.log').is_file()


def test_dense_step_is_skipped_in_one_line_without_mmcv_ops(monkeypatch, capsys):
    """Without mmcv's compiled ops (a pure-python mmcv) the dense step says so and is skipped;
    the exit status then depends on the other checks only."""
    import importlib.util
    import os.path as osp
    import sys

    from ..conftest import REPO
    monkeypatch.syspath_prepend(osp.join(REPO, 'tools', 'gpu_check'))
    spec = importlib.util.spec_from_file_location(
        'train_checks', osp.join(REPO, 'tools', 'gpu_check', 'train_checks.py'))
    train_checks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_checks)
    monkeypatch.setitem(sys.modules, 'mmcv._ext', None)  # as when the module is absent
    result = train_checks.check_dense({}, None)
    assert result['ok'] is None
    line = capsys.readouterr().out.strip()
    assert line == result['skipped'] and line.startswith(
        "[dense] skipped: mmcv's compiled ops (mmcv._ext) are not importable (ModuleNotFoundError")
    assert 'Mask R-CNN needs roi_align / nms from them' in line
