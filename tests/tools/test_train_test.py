"""The stock-style tools on real configs: train, test, distributed train on CPU, flops, benchmark."""
import glob
import os.path as osp
import re

import pytest

from ..conftest import free_port, run_python, run_tool

QUICKSTART = 'configs/quickstart/visionllama-tiny-p4_1xb64-20e_digits.py'


def _digits_opts(digits_root, *extra):
    return [
        '--cfg-options',
        f'train_dataloader.dataset.data_root={digits_root}',
        f'val_dataloader.dataset.data_root={digits_root}',
        f'test_dataloader.dataset.data_root={digits_root}',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False', 'test_dataloader.persistent_workers=False',
        *extra,
    ]


@pytest.fixture(scope='module')
def quickstart_run(tmp_path_factory, python, digits_root):
    """Train the quickstart for one epoch (23 iterations) with our tools/train.py, in a new
    interpreter (as from a shell: nothing imported or registered beforehand)."""
    work = str(tmp_path_factory.mktemp('quickstart'))
    out = run_tool([python, 'tools/train.py', QUICKSTART, '--work-dir', work,
                    *_digits_opts(digits_root, 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                                  'default_hooks.checkpoint.interval=1')], fresh=True)
    return work, out


def test_quickstart_trains_logs_and_validates(quickstart_run):
    work, out = quickstart_run
    assert re.search(r'Epoch\(train\)\s+\[1\]\[10/23\]', out), out[-3000:]
    acc = float(re.search(r'Epoch\(val\) \[1\]\[3/3\]\s+accuracy/top1: ([\d.]+)', out).group(1))
    assert 0.0 <= acc <= 100.0  # epoch 1 is the lr warm-up; learning is asserted below
    assert osp.exists(osp.join(work, 'epoch_1.pth'))


@pytest.fixture(scope='module')
def full_quickstart(tmp_path_factory, python, digits_root):
    """The README's quickstart as shipped (20 epochs, 2 workers)."""
    work = str(tmp_path_factory.mktemp('quickstart_full'))
    out = run_tool([python, 'tools/train.py', QUICKSTART, '--work-dir', work,
                    '--cfg-options', f'train_dataloader.dataset.data_root={digits_root}',
                    f'val_dataloader.dataset.data_root={digits_root}'])
    return work, out


def test_quickstart_reaches_95_percent(full_quickstart):
    _, out = full_quickstart
    accs = [float(a) for a in re.findall(r'Epoch\(val\) \[\d+\]\[3/3\]\s+accuracy/top1: ([\d.]+)', out)]
    assert len(accs) == 4 and accs[-1] >= 95.0, accs


def _accuracy_at(python, config, ckpt, digits_root, work, size, auto_scale):
    out = run_tool([python, 'tools/test.py', config, ckpt, '--work-dir', work,
                    *_digits_opts(digits_root, f'model.backbone.auto_scale={auto_scale}',
                                  f'test_dataloader.dataset.pipeline.1.scale=({size},{size})')])
    return float(re.search(r"'accuracy/top1': ([\d.]+)", out).group(1))


def test_as2drope_generalises_to_twice_the_training_size(full_quickstart, python, digits_root,
                                                         tmp_path):
    """Paper Table 12 on our data: the model trained at 32 px (8x8 tokens) is evaluated at 64 px
    (16x16 tokens) with tools/test.py and --cfg-options only, with AS2DRoPE and with plain 2D RoPE
    (same weights: at the training size the two are identical)."""
    work, _ = full_quickstart
    ckpt = osp.join(work, 'epoch_20.pth')
    args = (python, QUICKSTART, ckpt, digits_root, str(tmp_path))
    at_train_size = _accuracy_at(*args, 32, False)
    as2d = _accuracy_at(*args, 64, True)
    rope2d = _accuracy_at(*args, 64, False)
    print(f'32px: {at_train_size:.2f}  64px AS2DRoPE: {as2d:.2f}  64px 2D RoPE: {rope2d:.2f}')
    assert at_train_size >= 95.0
    assert as2d >= 90.0 and as2d > rope2d + 20.0


def test_quickstart_checkpoint_through_the_stock_inferencers(full_quickstart, digits_root):
    """mmpretrain's ImageClassificationInferencer and FeatureExtractor on the trained quickstart
    checkpoint, from the config file as shipped: labelled digits (held out) and their features
    (the checks are in tests/tools/test_inferencers.py; measured 100% and 100% on 30 digits,
    10% and 6.7% with random weights)."""
    from .test_inferencers import check_trained_digits_classifier
    work, _ = full_quickstart
    check_trained_digits_classifier(QUICKSTART, osp.join(work, 'epoch_20.pth'), digits_root)


def test_quickstart_checkpoint_evaluates_with_test_py(quickstart_run, python, digits_root, tmp_path):
    work, _ = quickstart_run
    out = run_tool([python, 'tools/test.py', QUICKSTART, osp.join(work, 'epoch_1.pth'),
                    '--work-dir', str(tmp_path), '--out', str(tmp_path / 'preds.pkl'),
                    *_digits_opts(digits_root)], fresh=True)
    assert re.search(r"'accuracy/top1': [\d.]+", out), out[-2000:]
    assert osp.exists(tmp_path / 'preds.pkl')


def test_resume_continues_from_own_checkpoint(quickstart_run, python, digits_root):
    work, _ = quickstart_run
    out = run_tool([python, 'tools/train.py', QUICKSTART, '--work-dir', work, '--resume',
                    *_digits_opts(digits_root, 'train_cfg.max_epochs=2', 'train_cfg.val_interval=2')])
    assert 'resumed epoch: 1' in out
    assert osp.exists(osp.join(work, 'epoch_2.pth'))


def test_dist_train_two_processes_on_cpu(tmp_path, digits_root):
    out = run_tool(['bash', 'tools/dist_train.sh', QUICKSTART, '2', '--work-dir', str(tmp_path),
                    *_digits_opts(digits_root, 'train_cfg.max_epochs=1',
                                  'train_cfg.val_interval=1')],
                   env={'PORT': str(free_port())})
    assert 'Distributed launcher: pytorch' in out or 'launcher: pytorch' in out
    assert re.search(r'Epoch\(train\)\s+\[1\]\[10/12\]', out), out[-3000:]  # 1437/64/2 -> 12
    assert glob.glob(osp.join(str(tmp_path), 'epoch_1.pth'))


def test_dist_train_two_processes_of_32_equal_one_of_64(tmp_path, python, digits_root):
    """DDP on CPU computes the single-process step: 2 processes x batch 32 through
    tools/dist_train.sh and 1 x 64 end one epoch (8 iterations, random crops on, drop path off)
    with the same weights. The crops agree too: ReproducibleSampler keys each sample's
    augmentation by its place in the global order, which does not depend on the process count."""
    from visionllama_mm.compat import load_checkpoint_file
    opts = _digits_opts(digits_root, 'train_cfg.max_epochs=1',
                        'train_dataloader.dataset.indices=512', 'val_dataloader.dataset.indices=40',
                        'model.backbone.drop_path_rate=0.0')
    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    run_tool([python, 'tools/train.py', QUICKSTART, '--work-dir', one, *opts])
    out = run_tool(['bash', 'tools/dist_train.sh', QUICKSTART, '2', '--work-dir', two, *opts,
                    'train_dataloader.batch_size=32'], env={'PORT': str(free_port())})
    assert re.search(r'Epoch\(train\)\s+\[1\]\[8/8\]', out), out[-3000:]
    a, b = (load_checkpoint_file(osp.join(w, 'epoch_1.pth'))['state_dict'] for w in (one, two))
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f'2 x 32 vs 1 x 64: max |diff| of the weights after one epoch {diff:.3g}')
    assert diff <= 1e-5


def test_get_flops(python):
    out = run_tool([python, 'tools/analysis_tools/get_flops.py',
                    'configs/visionllama/visionllama-plain-small-p16_8xb256-800e_in1k.py'], fresh=True)
    assert 'Params: 21,961,192' in out
    gflops = float(re.search(r'FLOPs \(MACs\): ([\d.]+) G', out).group(1))
    assert 4.4 < gflops < 4.8  # ~4.6 G, counted from the official vit_llama_rope_small_patch16


def test_benchmark_side_by_side_with_timm_and_a_reference_file(python, tmp_path):
    ref = tmp_path / 'my_models.py'  # a user's model file, with a sibling import of its own
    (tmp_path / 'my_layers.py').write_text('import torch.nn as nn\nWIDTH = 16\n')
    ref.write_text('import torch.nn as nn\nfrom my_layers import WIDTH\n\n\n'
                   'def tiny_mlp(num_classes=1000, **kwargs):\n'
                   '    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, WIDTH), nn.GELU(),\n'
                   '                         nn.Linear(WIDTH, num_classes))\n')
    out = run_tool([python, 'tools/analysis_tools/benchmark.py', QUICKSTART, '--timm',
                    'vit_tiny_patch16_224', '--reference-file', str(ref), '--reference-model',
                    'tiny_mlp', '--batch-size', '4', '--iters', '1', '--warmup', '1',
                    '--repeats', '1', '--shape', '32'], fresh=True)
    header = re.search(r'model +params\(M\) +fp32 fwd +fp32 fwd\+bwd +bf16 fwd +bf16 fwd\+bwd', out)
    assert header, out
    assert re.search(r'my_models.py:tiny_mlp +0\.05( +[\d.]+){4}', out), out  # 49,338 params
    for ref_name in ('timm:vit_tiny_patch16_224', 'my_models.py:tiny_mlp'):
        assert re.search(rf'ours / {re.escape(ref_name)}( +[\d.]+x){{4}}', out), out
    assert re.search(r'VisionLLaMA +bf16/fp32 fwd [\d.]+x, bf16/fp32 fwd\+bwd [\d.]+x', out), out


def test_benchmark_compiled_twins_beside_eager(python, tmp_path):
    """--compile measures a compiled copy of ours and of each reference in the same rounds and
    adds the compiled/compiled and compiled/eager ratios (here with the aot_eager backend, which
    traces as inductor does but generates no kernels; the README's numbers use inductor)."""
    ref = tmp_path / 'mlp.py'
    ref.write_text('import torch.nn as nn\n\n\ndef tiny_mlp(num_classes=1000, **kwargs):\n'
                   '    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))\n')
    out = run_tool([python, 'tools/analysis_tools/benchmark.py', QUICKSTART, '--reference-file',
                    str(ref), '--reference-model', 'tiny_mlp', '--batch-size', '2', '--iters', '1',
                    '--warmup', '1', '--repeats', '1', '--shape', '32', '--precisions', 'fp32',
                    '--compile', 'aot_eager'])
    for row in ('VisionLLaMA', 'mlp.py:tiny_mlp', 'VisionLLaMA compiled', 'mlp.py:tiny_mlp compiled'):
        assert re.search(rf'^{re.escape(row)} +[\d.]+( +[\d.]+){{2}}$', out, re.M), out
    for ratio in ('ours / mlp.py:tiny_mlp', 'ours compiled / mlp.py:tiny_mlp compiled',
                  'compiled / eager VisionLLaMA', 'compiled / eager mlp.py:tiny_mlp'):
        assert re.search(rf'^{re.escape(ratio)} +[\d.]+x +[\d.]+x$', out, re.M), out
    proc = run_python([python, 'tools/analysis_tools/benchmark.py', QUICKSTART,
                       '--compile-mode', 'max-autotune'])
    assert proc.returncode != 0 and '--compile-mode needs --compile' in proc.stdout
    proc = run_python([python, 'tools/analysis_tools/benchmark.py', QUICKSTART, '--compile', 'tvm2'])
    assert proc.returncode != 0 and '--compile tvm2: not a torch.compile backend' in proc.stdout


def test_stock_mmpretrain_tools_run_our_config(tmp_path, python, digits_root):
    """mmpretrain's own tools/train.py and tools/test.py (shipped in the wheel) run our config
    in new interpreters: custom_imports alone brings in the registries and the shims."""
    import mmpretrain
    stock = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools')
    opts = _digits_opts(digits_root, 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1')
    out = run_tool([python, osp.join(stock, 'train.py'), QUICKSTART, '--work-dir', str(tmp_path),
                    *opts], fresh=True)
    assert re.search(r'Epoch\(val\) \[1\]\[3/3\]\s+accuracy/top1', out)
    out = run_tool([python, osp.join(stock, 'test.py'), QUICKSTART,
                    str(tmp_path / 'epoch_1.pth'), *opts], fresh=True)
    assert re.search(r'Epoch\(test\) \[3/3\]\s+accuracy/top1: [\d.]+', out)


def test_stock_tool_without_custom_imports_fails_in_a_fresh_process(tmp_path, python, digits_root):
    """What the fresh-process runs above guard: the stock tools know our types only through the
    config's custom_imports. The quickstart without it fails in a new interpreter at the first of
    our types that the Runner builds, with the registry's KeyError naming it (a run forked from a
    process that had already imported the package would train instead)."""
    import importlib

    import mmpretrain
    from mmengine.config import Config
    from mmengine.registry import Registry
    stock = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools')
    cfg = Config.fromfile(QUICKSTART)  # the whole config, its _base_ files merged in
    assert cfg.pop('custom_imports').imports == ['visionllama_mm']
    config = str(tmp_path / 'quickstart_without_custom_imports.py')
    cfg.dump(config)
    proc = run_python([python, osp.join(stock, 'train.py'), config, '--work-dir',
                       str(tmp_path / 'work'), *_digits_opts(digits_root)], fresh=True)
    assert proc.returncode != 0
    missing = re.search(r"KeyError: '(\w+) is not in the ((\w+)::)?(\w+) registry\. Please check",
                        proc.stdout)
    assert missing, proc.stdout[-3000:]
    name, scope, registry = missing.group(1), missing.group(3) or 'mmengine', missing.group(4)
    module = importlib.import_module(f'{scope}.registry')
    found = [r for r in vars(module).values() if isinstance(r, Registry) and r.name == registry]
    assert found and found[0].get(name).__module__.startswith('visionllama_mm.'), \
        f'{name} in {scope}::{registry} is not one of the types this package registers'
    print(f'without custom_imports: KeyError for {name} ({scope}::{registry} registry)')
