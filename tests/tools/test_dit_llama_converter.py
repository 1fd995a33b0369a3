"""tools/model_converters/dit_llama_official.py on checkpoints in the official dit/train.py layout
({'model', 'ema', 'opt', 'args'}) written from the independent official-layout reference: the
output loads strictly under ``denoiser.`` (and into a bare DiTLLaMA through init_cfg's prefix) and
gives the reference's outputs; ema by default, model on request; bad files are refused naming the
fault and nothing is written."""
import argparse
import os
import os.path as osp
import sys

import pytest
import torch
import torch.nn as nn

from ..conftest import REPO, run_python, run_tool
from ..models.diffusion.official_dit_reference import OfficialDiTLLaMA

TOOL = osp.join(REPO, 'tools', 'model_converters', 'dit_llama_official.py')
ARCH = dict(embed_dims=64, num_layers=2, num_heads=4)


def _reference(seed=0):
    torch.manual_seed(seed)
    ref = OfficialDiTLLaMA(input_size=8, patch=2, in_ch=4, dim=64, depth=2, heads=4,
                           classes=10).eval()
    for p in ref.parameters():  # adaLN and final layers non-zero, so every part matters
        nn.init.normal_(p, std=0.15)
    return ref


def _official_checkpoint(path, ema, model):
    """What dit/train.py saves: both weights, AdamW's state and the argparse arguments."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model(torch.randn(1, 4, 8, 8), torch.tensor([3]), torch.tensor([1])).square().mean().backward()
    opt.step()
    torch.save(dict(model=model.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(),
                    args=argparse.Namespace(model='DiT-LLaMA-tiny/2', image_size=64,
                                            num_classes=10, global_seed=0)), path)


def _inputs():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(3, 4, 8, 8, generator=g), torch.tensor([0, 250, 999]),
            torch.tensor([0, 9, 10]))  # 10: the null class


class _Wrapper(nn.Module):  # the denoiser attribute of ClassConditionalDiffusion
    def __init__(self, **kwargs):
        super().__init__()
        from visionllama_mm.models.diffusion import DiTLLaMA
        self.denoiser = DiTLLaMA(**kwargs)


@pytest.fixture(scope='module')
def official(tmp_path_factory):
    ema, model = _reference(0), _reference(1)
    path = tmp_path_factory.mktemp('dit') / 'checkpoint-0400000.pt'
    _official_checkpoint(path, ema, model)
    return path, ema, model


def test_converted_ema_matches_the_reference(official, tmp_path):
    from visionllama_mm.models.diffusion import DiTLLaMA
    src, ema, _ = official
    dst = tmp_path / 'dit.pth'
    out = run_tool([sys.executable, TOOL, str(src), str(dst), '--num-heads', '4'])
    assert 'format: official-dit-llama, weights: ema' in out, out
    assert ("denoiser: type='DiTLLaMA', arch={'embed_dims': 64, 'num_layers': 2, 'num_heads': 4}, "
            "patch_size=2, in_channels=4, input_size=8, num_classes=10, class_dropout_prob=0.1, "
            "learn_sigma=True, block_type='llama'") in out, out
    assert 'note: dropped pos_embed (1, 16, 64)' in out, out
    ckpt = torch.load(dst, weights_only=True)  # tensors and plain data only
    assert set(ckpt) == {'state_dict', 'meta'}
    assert all(k.startswith('denoiser.') for k in ckpt['state_dict'])
    assert ckpt['meta']['weights'] == 'ema' and ckpt['meta']['prefix'] == 'denoiser.'
    kwargs = {k: v for k, v in ckpt['meta']['denoiser'].items() if k != 'type'}
    assert kwargs['arch'] == ARCH

    wrapper = _Wrapper(**kwargs).eval()
    wrapper.load_state_dict(ckpt['state_dict'], strict=True)
    bare = DiTLLaMA(**kwargs, init_cfg=dict(type='Pretrained', checkpoint=str(dst),
                                            prefix='denoiser.')).eval()
    bare.init_weights()
    x, t, y = _inputs()
    with torch.no_grad():
        want = ema(x, t, y)
        d_wrapper = (wrapper.denoiser(x, t, y) - want).abs().max().item()
        d_bare = (bare(x, t, y) - want).abs().max().item()
    print(f'max |ours - reference|: wrapper {d_wrapper:.2e}, init_cfg prefix {d_bare:.2e}, '
          f'outputs up to {want.abs().max():.1f}')
    assert want.abs().max() > 1  # a non-trivial output
    assert d_wrapper <= 1e-4 and d_bare <= 1e-4


def test_model_weights_on_request_and_no_prefix(official, tmp_path):
    from visionllama_mm.models.diffusion import DiTLLaMA
    src, ema, model = official
    dst = tmp_path / 'model.pth'
    out = run_tool([sys.executable, TOOL, str(src), str(dst), '--num-heads', '4', '--key', 'model',
                    '--prefix', ''])
    assert 'weights: model' in out and "keys under ''" in out, out
    ckpt = torch.load(dst, weights_only=True)
    ours = DiTLLaMA(arch=ARCH, input_size=8, num_classes=10).eval()
    ours.load_state_dict(ckpt['state_dict'], strict=True)
    x, t, y = _inputs()
    with torch.no_grad():
        assert (ours(x, t, y) - model(x, t, y)).abs().max() <= 1e-4
        assert (ours(x, t, y) - ema(x, t, y)).abs().max() > 0.1  # not the ema weights


def test_bare_state_dict_and_inferred_heads(tmp_path):
    """A bare state dict of a paper width (384: DiT-LLaMA-S) needs no --num-heads; without the
    pos_embed it needs --input-size."""
    torch.manual_seed(0)
    ref = OfficialDiTLLaMA(input_size=4, patch=2, in_ch=4, dim=384, depth=1, heads=6, classes=10)
    sd = ref.state_dict()
    torch.save(sd, tmp_path / 'bare.pt')
    out = run_tool([sys.executable, TOOL, str(tmp_path / 'bare.pt'), str(tmp_path / 's.pth')])
    assert 'weights: state dict' in out and "'num_heads': 6" in out, out
    sd.pop('pos_embed')
    torch.save(sd, tmp_path / 'nopos.pt')
    proc = run_python([sys.executable, TOOL, str(tmp_path / 'nopos.pt'), str(tmp_path / 'x.pth')])
    assert proc.returncode != 0 and 'give it with --input-size' in proc.stdout, proc.stdout
    out = run_tool([sys.executable, TOOL, str(tmp_path / 'nopos.pt'), str(tmp_path / 'x.pth'),
                    '--input-size', '4'])
    assert 'input_size=4' in out and 'note:' not in out, out


def test_refuses_bad_keys_half_swiglu_and_code(official, tmp_path):
    src, ema, _ = official

    def run(sd_or_ckpt, *extra):
        path = tmp_path / 'bad.pt'
        torch.save(sd_or_ckpt, path)
        dst = tmp_path / 'never.pth'
        proc = run_python([sys.executable, TOOL, str(path), str(dst), '--num-heads', '4', *extra])
        assert proc.returncode != 0 and not dst.exists(), proc.stdout
        return proc.stdout

    sd = ema.state_dict()
    renamed = dict(sd)
    renamed['blocks.1.attn.qkv_w.weight'] = renamed.pop('blocks.1.attn.qkv.weight')
    renamed.pop('final_layer.adaLN_modulation.1.bias')
    out = run(dict(ema=renamed))
    assert ("missing (2): ['blocks.1.attn.qkv.weight', 'final_layer.adaLN_modulation.1.bias']; "
            "unexpected (1): ['blocks.1.attn.qkv_w.weight']") in out, out

    half = {k: v for k, v in sd.items() if k != 'blocks.1.mlp.c_fc2.weight'}
    out = run(dict(ema=half))
    assert "blocks.1.mlp has ['c_fc1'] of the SwiGLU projections" in out, out

    shaped = dict(sd, **{'blocks.0.attn.proj.bias': torch.zeros(65)})
    assert ("the converted weights do not fit DiTLLaMA: the keys do not match the model: shape "
            "mismatch (1): ['blocks.0.attn.proj.bias: (65,) != (64,)']") in run(shaped)

    out = run(dict(ema=sd), '--key', 'model')
    assert "--key model: the file has no 'model' weights (it has ['ema'])" in out, out

    out = run(dict(ema=sd, hook=os.system))  # a global that is code, not data
    assert 'Refusing to load' in out and 'system' in out, out

    dst = tmp_path / 'ok.pth'
    run_tool([sys.executable, TOOL, str(src), str(dst), '--num-heads', '4'])
    proc = run_python([sys.executable, TOOL, str(dst), str(tmp_path / 'again.pth')])
    assert proc.returncode != 0 and 'already a visionllama_mm checkpoint' in proc.stdout
    proc = run_python([sys.executable, TOOL, str(src), str(tmp_path / 'x.pth')])
    assert proc.returncode != 0 and 'width 64' in proc.stdout and '--num-heads' in proc.stdout


# ---------------------------------------------------------------------------------------------
# export: --to official


def _official_sincos(dim, grid):
    """The official frozen table, written out: per token (row-major), [sin, cos] of its column
    then of its row, frequencies 1 / 10000^(i / (dim / 4))."""
    omega = 1. / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing='ij')

    def encode(pos):
        angles = pos.reshape(-1, 1).double() * omega
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(cols), encode(rows)], dim=1).float()[None]


def _official_models():
    import importlib.util
    path = osp.join(REPO, 'tools', 'analysis_tools', 'dit_official_models.py')
    spec = importlib.util.spec_from_file_location('_dit_official_models', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_to_official_round_trip(tmp_path, capsys):
    """A randomly initialised DiT-LLaMA as tools/train.py saves it (denoiser under ``denoiser.``,
    the config text in ``meta['cfg']``, which gives the latent size) -> ``--to official`` -> the
    official-layout DiT_LLaMA of tools/analysis_tools/dit_official_models.py loads the
    .safetensors strictly and gives our outputs; its pos_embed is the official sin-cos table;
    converted back it is our state dict exactly."""
    from safetensors.torch import load_file

    from visionllama_mm.models.diffusion.convert import to_ours
    kwargs = dict(arch=dict(embed_dims=64, num_layers=2, num_heads=4), input_size=8,
                  num_classes=10)
    ours = _Wrapper(**kwargs).eval()
    torch.manual_seed(2)
    for p in ours.parameters():
        nn.init.normal_(p, std=0.15)
    cfg = ("model = dict(type='ClassConditionalDiffusion', denoiser=dict(type='DiTLLaMA', "
           "arch=dict(embed_dims=64, num_layers=2, num_heads=4), input_size=8, num_classes=10))")
    src = tmp_path / 'iter_2000.pth'
    torch.save({'state_dict': ours.state_dict(), 'meta': {'cfg': cfg, 'iter': 2000}}, src)
    tool = _tool_module()
    tool.main([str(src), str(tmp_path / 'DiT-LLaMA-tiny-2'), '--to', 'official'])
    dst = tmp_path / 'DiT-LLaMA-tiny-2.safetensors'
    assert capsys.readouterr().out == f'exported: DiT-LLaMA -> official\nwrote: {dst}\n'
    exported = load_file(str(dst))
    torch.testing.assert_close(exported['pos_embed'], _official_sincos(64, 4), atol=1e-6, rtol=0)
    official = _official_models().DiT_LLaMA(input_size=8, patch_size=2, in_channels=4,
                                            hidden_size=64, depth=2, num_heads=4,
                                            num_classes=10).eval()
    official.load_state_dict(exported, strict=True)
    x, t, y = _inputs()
    with torch.no_grad():
        want = ours.denoiser(x, t, y)
        diff = (official(x, t, y) - want).abs().max().item()
    print(f'--to official: max |official - ours| {diff:.2e}, outputs up to {want.abs().max():.1f}')
    assert want.abs().max() > 1 and diff <= 1e-4
    back = to_ours(exported, 'official-dit-llama', num_heads=4)
    assert sorted(back) == sorted(ours.state_dict())
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())
    # a bare state dict has no latent size: --input-size gives it, its absence is refused
    bare = tmp_path / 'bare.pth'
    torch.save(ours.denoiser.state_dict(), bare)
    with pytest.raises(SystemExit, match=r'give it with --input-size \(the latent side, e\.g\. 32 '
                                         r'for 256 px\)$'):
        tool.main([str(bare), str(tmp_path / 'x.pt'), '--to', 'official', '--prefix', ''])
    tool.main([str(bare), str(tmp_path / 'x.pt'), '--to', 'official', '--prefix', '',
               '--input-size', '8'])
    assert torch.equal(torch.load(tmp_path / 'x.pt', weights_only=True)['pos_embed'],
                       exported['pos_embed'])
    # the original DiT block (GELU MLP, the fixed pos_embed a buffer) has the official names
    from visionllama_mm.models.diffusion import DiTLLaMA
    from visionllama_mm.models.diffusion.convert import from_ours
    dit = DiTLLaMA(**kwargs, block_type='dit').state_dict()
    official_dit = from_ours({'denoiser.' + k: v for k, v in dit.items()}, 'official')
    assert sorted(official_dit) == sorted(dit)
    assert all(torch.equal(official_dit[k], v) for k, v in dit.items())


def _tool_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location('_dit_llama_official', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
