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


DIT_TINY = """
custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)
model = dict(type='ClassConditionalDiffusion',
             denoiser=dict(type='DiTLLaMA', arch=dict(embed_dims=64, depth=2, num_heads=4),
                           patch_size=2, in_channels=4, input_size=8, num_classes=10),
             objective=dict(type='GaussianDiffusion', sampling_steps=10), vae=None)
"""

# a **kwargs factory like the official DiT_XL_2 (its name fixes the sizes), and a wrong-sized one
DIT_FACTORIES = """
from tools.analysis_tools.dit_official_models import DiT_LLaMA


def DiT_LLaMA_tiny_2(**kwargs):
    print('factory got', sorted(kwargs))
    return DiT_LLaMA(hidden_size=64, depth=2, num_heads=4, patch_size=2, **kwargs)


def DiT_LLaMA_tiny_4(**kwargs):
    return DiT_LLaMA(hidden_size=64, depth=2, num_heads=4, patch_size=4, **kwargs)
"""


def test_diffusion_denoiser_beside_the_official_layout(python, tmp_path):
    """A diffusion config's denoiser beside the official-layout reference built at its sizes and
    a DiT-block variant: one row each (same parameters but the reference's frozen pos_embed) and
    ours / reference ratios in fp32 and bf16."""
    cfg = tmp_path / 'dit_tiny.py'
    cfg.write_text(DIT_TINY)
    out = run_tool([python, 'tools/analysis_tools/benchmark.py', str(cfg), '--reference-file',
                    'tools/analysis_tools/dit_official_models.py', '--reference-model', 'DiT_LLaMA',
                    '--variant', 'dit', 'model.denoiser.block_type=dit', '--batch-size', '2',
                    '--iters', '1', '--warmup', '1', '--repeats', '1'])
    assert "'hidden_size': 64, 'depth': 2, 'num_heads': 4, 'num_classes': 10" in out, out
    assert re.search(r'model +params\(M\) +fp32 fwd +fp32 fwd\+bwd +bf16 fwd +bf16 fwd\+bwd',
                     out), out
    rows = {m.group(1): [float(v) for v in m.group(2).split()] for m in re.finditer(
        r'^(DiTLLaMA\(llama\)|dit_official_models.py:DiT_LLaMA|dit) +([\d. ]+)$', out, re.M)}
    assert set(rows) == {'DiTLLaMA(llama)', 'dit_official_models.py:DiT_LLaMA', 'dit'}, out
    # the reference has the same weights plus the frozen 16 x 64 pos_embed; DiT's MLP is smaller
    assert rows['dit_official_models.py:DiT_LLaMA'][0] == 0.22 and rows['DiTLLaMA(llama)'][0] == 0.21
    assert all(v > 0 for r in rows.values() for v in r)
    assert re.search(r'ours / dit_official_models.py:DiT_LLaMA( +[\d.]+x){4}$', out, re.M), out
    assert re.search(r'ours / dit( +[\d.]+x){4}$', out, re.M), out


def test_diffusion_reference_factories_get_the_config_sizes(python, tmp_path):
    """A **kwargs factory gets the data-side arguments only; a reference of another size
    (trainable parameters) is refused before timing."""
    cfg = tmp_path / 'dit_tiny.py'
    cfg.write_text(DIT_TINY)
    (tmp_path / 'factories.py').write_text(DIT_FACTORIES)
    args = [python, 'tools/analysis_tools/benchmark.py', str(cfg), '--reference-file',
            str(tmp_path / 'factories.py'), '--precisions', 'fp32', '--batch-size', '2',
            '--iters', '1', '--warmup', '1', '--repeats', '1', '--reference-model']
    out = run_tool(args + ['DiT_LLaMA_tiny_2'])
    assert "factory got ['in_channels', 'input_size', 'learn_sigma', 'num_classes']" in out, out
    assert re.search(r'ours / factories.py:DiT_LLaMA_tiny_2 +[\d.]+x +[\d.]+x$', out, re.M), out
    proc = run_python(args + ['DiT_LLaMA_tiny_4'])
    assert proc.returncode != 0
    # patch 4: patch conv +3 * 1024, final Linear +96 * 65 over ours (patch 2)
    assert ('factories.py:DiT_LLaMA_tiny_4: 223,616 trainable parameters, ours 214,304: not the '
            'same denoiser size') in proc.stdout, proc.stdout


def test_twins_with_swiglu_has_the_pyramid_ffns():
    """The Twins + SwiGLU reference has the pyramid's FFN matrices (the architecture-matched
    reference of the pyramid speed comparison) and runs a forward."""
    import torch

    from tools.analysis_tools.twins_swiglu_models import twins_svt_small_swiglu
    from visionllama_mm.models.backbones.pyramid_vision_llama import PyramidVisionLLaMA
    ref = twins_svt_small_swiglu(num_classes=10)
    ours = PyramidVisionLLaMA(arch='small')
    for k, stage in enumerate(ref.blocks):
        for i, block in enumerate(stage):
            ffn = ours.stages[k][i].ffn
            assert block.mlp.fc1.weight.shape == ffn.w12.weight.shape
            assert block.mlp.fc2.weight.shape == ffn.w3.weight.shape
            assert block.mlp.fc1.bias is None and block.mlp.fc2.bias is None
    with torch.no_grad():
        assert ref(torch.randn(1, 3, 64, 64)).shape == (1, 10)
