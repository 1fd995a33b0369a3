"""tools/analysis_tools/benchmark.py: config variants as references and peak memory."""
import re

from ..conftest import run_python, run_tool

FCMAE_TINY = """
default_scope = 'mmpretrain'
custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
model = dict(type='FCMAE',
             backbone=dict(type='SparseConvNeXtV2', mask_ratio=0.6,
                           arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 24, 32])),
             neck=dict(type='FCMAEDecoder', in_channels=32, embed_dims=16),
             head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=32,
                       loss=dict(type='PixelReconstructionLoss', criterion='L2')))
"""


def test_sparse_vs_masked_dense_side_by_side_with_peak_memory(python, tmp_path):
    cfg = tmp_path / 'fcmae_tiny.py'
    cfg.write_text(FCMAE_TINY)
    out = run_tool([python, 'tools/analysis_tools/benchmark.py', str(cfg), '--variant',
                    'masked-dense', 'model.backbone.impl=masked_dense', '--precisions', 'fp32',
                    '--memory', '--batch-size', '4', '--shape', '128', '--iters', '1',
                    '--warmup', '1', '--repeats', '1'])
    assert re.search(r'model +params\(M\) +fp32 fwd +fp32 fwd\+bwd +fp32 peak MiB', out), out
    rows = {m.group(1): [float(v) for v in m.group(2).split()]
            for m in re.finditer(r'^(SparseConvNeXtV2|masked-dense) +([\d. ]+)$', out, re.M)}
    assert set(rows) == {'SparseConvNeXtV2', 'masked-dense'}, out
    sparse, dense = rows['SparseConvNeXtV2'], rows['masked-dense']
    assert sparse[0] == dense[0]  # same parameters
    assert sparse[3] > 0 and dense[3] > 0  # peak MiB measured for both
    assert re.search(r'ours / masked-dense( +[\d.]+x){3}', out), out


def test_variant_needs_a_name_and_overrides(python, tmp_path):
    cfg = tmp_path / 'fcmae_tiny.py'
    cfg.write_text(FCMAE_TINY)
    proc = run_python([python, 'tools/analysis_tools/benchmark.py', str(cfg), '--variant',
                       'model.backbone.impl=masked_dense'])
    assert proc.returncode != 0
    assert '--variant takes a NAME then key=value overrides' in proc.stdout
