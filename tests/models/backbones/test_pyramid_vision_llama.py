"""Pyramid VisionLLaMA: sizes, parity with the official layout, positions, shapes, errors."""
import pytest
import torch
from mmpretrain.registry import MODELS

import visionllama_mm  # noqa: F401
from visionllama_mm.converters import convert_state_dict
from visionllama_mm.models.backbones import PyramidVisionLLaMA, convert_official_pyramid
from .official_pyramid_reference import OfficialPyramidVisionLLaMA

ARCHS = {
    'small': dict(dims=(64, 128, 256, 512), depths=(2, 2, 10, 4), heads=(2, 4, 8, 16)),
    'base': dict(dims=(96, 192, 384, 768), depths=(2, 2, 18, 2), heads=(3, 6, 12, 24)),
    'large': dict(dims=(128, 256, 512, 1024), depths=(2, 2, 18, 2), heads=(4, 8, 16, 32)),
}
TINY = dict(embed_dims=[16, 32, 32, 64], depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4],
            ffn_dims=[32, 64, 64, 128])


def _classifier(arch, **backbone):
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='PyramidVisionLLaMA', arch=arch, out_indices=(3, ),
                      out_type='avg_featmap', **backbone),
        head=dict(type='LinearClsHead', num_classes=1000,
                  in_channels=ARCHS[arch]['dims'][-1])))


def _randomize(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(('gamma_1', 'gamma_2')):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return module


@pytest.mark.parametrize('arch,expected', [('small', 25_903_976), ('base', 56_029_480),
                                           ('large', 104_721_128)])
def test_param_counts_match_official(arch, expected):
    assert sum(p.numel() for p in _classifier(arch).parameters()) == expected


@pytest.fixture(scope='module')
def small_reference():
    """The official-layout S at random init (shared by the parity cases) and its conversion."""
    ref = _randomize(OfficialPyramidVisionLLaMA(**ARCHS['small'])).eval()
    kind, converted = convert_state_dict({'model': ref.state_dict()})
    assert kind == 'deit-pyramid'
    assert converted.keys() == convert_official_pyramid(ref.state_dict()).keys()
    return ref, converted


@pytest.mark.parametrize('auto_scale,size', [(False, (224, 224)), (True, (224, 224)),
                                             (True, (256, 320))])
def test_small_parity_with_official_layout(small_reference, auto_scale, size):
    ref, converted = small_reference
    ref.auto_scale = auto_scale
    model = _classifier('small', auto_scale=auto_scale).eval()
    missing, unexpected = model.load_state_dict(converted, strict=True)
    assert not missing and not unexpected
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        diff = (model(x, mode='tensor') - ref(x)).abs().max().item()
    assert diff <= 1e-4, diff


@pytest.mark.parametrize('arch', ['base', 'large'])
def test_base_large_keys_and_shapes(arch):
    with torch.device('meta'):
        ref = OfficialPyramidVisionLLaMA(**ARCHS[arch])
        ours = _classifier(arch)
    _, converted = convert_state_dict({'model': ref.state_dict()})
    assert {k: v.shape for k, v in converted.items()} == {
        k: v.shape for k, v in ours.state_dict().items()}


def test_gsa_key_positions():
    official = PyramidVisionLLaMA(arch=TINY, gsa_key_pos='official')
    paper = PyramidVisionLLaMA(arch=TINY, gsa_key_pos='paper')
    # stage 0 at 224: 56x56 tokens, sr 8 -> 49 keys
    p = paper.key_positions(0, 56, 56)
    centres = torch.arange(7) * 8 + 3.5
    assert torch.equal(p[:, 0].view(7, 7), centres.expand(7, 7))
    assert torch.equal(p[:, 1].view(7, 7), centres[:, None].expand(7, 7))
    o = official.key_positions(0, 56, 56)  # the released code: y = 0.875, x = 0.875 + 8m
    assert torch.all(o[:, 1] == 0.875) and torch.equal(o[:, 0], 0.875 + 8 * torch.arange(49.))
    # sr = 1 (stage 3): both are the query grid
    assert torch.equal(official.key_positions(3, 7, 7), paper.key_positions(3, 7, 7))


def test_auto_scale_rules():
    anchor = PyramidVisionLLaMA(arch=TINY, auto_scale=True, auto_scale_rule='anchor', img_size=224)
    plain = PyramidVisionLLaMA(arch=TINY)
    for k, grid in enumerate([56, 28, 14, 7]):
        assert anchor.ropes[k].scale(grid, grid) == (1.0, 1.0)  # at the anchor: plain 2D RoPE
        q_a, k_a = anchor.gsa_tables(k, grid, grid, 'cpu')
        q_p, k_p = plain.gsa_tables(k, grid, grid, 'cpu')
        assert torch.equal(q_a[0], q_p[0]) and torch.equal(k_a[1], k_p[1])
    assert anchor.ropes[0].scale(128, 64) == (56 / 64, 56 / 128)  # per axis
    official = PyramidVisionLLaMA(arch=TINY, auto_scale=True)
    assert official.ropes[0].scale(128, 64) == (14 / 128, 14 / 128)  # official 14 / H, both axes


def test_dense_outputs_non_square_and_errors():
    m = PyramidVisionLLaMA(arch=TINY, out_indices=(0, 1, 2, 3))
    outs = m(torch.randn(1, 3, 224, 320))
    assert [tuple(o.shape) for o in outs] == [
        (1, 16, 56, 80), (1, 32, 28, 40), (1, 32, 14, 20), (1, 64, 7, 10)]
    # any size: padded to a multiple of 32 inside, every map cropped to ceil(H / stride)
    outs = m(torch.randn(1, 3, 230, 225))
    assert [tuple(o.shape[-2:]) for o in outs] == [(58, 57), (29, 29), (15, 15), (8, 8)]
    with pytest.raises(ValueError, match="unknown arch 'tiny'; valid names: b, base, l, large"):
        PyramidVisionLLaMA(arch='tiny')
    with pytest.raises(ValueError, match='out_indices must name stages'):
        PyramidVisionLLaMA(arch=TINY, out_indices=(4, ))
    with pytest.raises(ValueError, match='returns the last stage only'):
        PyramidVisionLLaMA(arch=TINY, out_indices=(2, 3), out_type='avg_featmap')
    # without the per-stage norms the outputs are the raw stage tokens
    raw = PyramidVisionLLaMA(arch=TINY, out_indices=(1, ), norm_after_stage=False)
    assert not hasattr(raw, 'out_norms')
    assert raw(torch.randn(1, 3, 64, 64))[0].shape == (1, 32, 8, 8)


def test_frozen_stages():
    m = PyramidVisionLLaMA(arch=TINY, out_indices=(0, 1, 2, 3), frozen_stages=2).train()
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(('patch_embeds.0.', 'patch_embeds.1.', 'stages.0.',
                                        'stages.1.', 'out_norms.0.', 'out_norms.1.'))
                          for n in frozen)
    assert {'stages.1.1.attn.sr.weight', 'out_norms.1.weight'} <= frozen
    assert not m.stages[1].training and m.stages[2].training


def test_gsa_table_cache_is_bounded_and_reset_on_move():
    m = PyramidVisionLLaMA(arch=TINY, rope_cache_size=3)
    rope = m.ropes[0]
    first = m.gsa_tables(0, 8, 8, 'cpu')
    second = m.gsa_tables(0, 8, 8, 'cpu')
    assert second[0] is first[0] and second[1] is first[1]  # cached
    for w in (16, 24, 32):
        m.gsa_tables(0, 8, w, 'cpu')
    keys = [k for k, _device, _inference in rope.cached_keys()]
    grids = [k[1:3] if k[0] == 'grid' else k[3:5] for k in keys]  # (H, W) of each table
    assert len(keys) == 3 and (8, 8) not in grids  # the least recently used went first
    m.float()
    assert rope.cached_keys() == []


def test_with_cp_same_gradients():
    torch.manual_seed(0)
    a = PyramidVisionLLaMA(arch=TINY, out_indices=(3, ), out_type='avg_featmap')
    b = PyramidVisionLLaMA(arch=TINY, out_indices=(3, ), out_type='avg_featmap', with_cp=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 64, 96)
    a(x)[0].pow(2).sum().backward()
    b(x)[0].pow(2).sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-6), name


def test_layer_depth():
    m = PyramidVisionLLaMA(arch='small')
    assert m.get_layer_depth('backbone.patch_embeds.0.projection.weight', 'backbone.') == (0, 20)
    assert m.get_layer_depth('backbone.stages.0.0.attn.qkv.weight', 'backbone.') == (1, 20)
    assert m.get_layer_depth('backbone.stages.2.3.ffn.w3.weight', 'backbone.') == (8, 20)
    assert m.get_layer_depth('backbone.patch_embeds.3.norm.weight', 'backbone.') == (14, 20)
    assert m.get_layer_depth('backbone.out_norms.0.weight', 'backbone.') == (19, 20)


@pytest.mark.parametrize('kwargs,size', [(dict(), 64), (dict(auto_scale=True, with_cp=True), 72)])
def test_training_forward_compiles_without_graph_breaks_or_recompiles(kwargs, size):
    """One graph for the training forward (LSA windows padded at 72 px, GSA sub-sampled keys with
    their own RoPE rows, drop path, LayerScale, checkpointing), no recompilation over 3 steps."""
    from ...compile_checks import assert_one_graph_no_recompile
    torch.manual_seed(0)
    m = PyramidVisionLLaMA(arch=TINY, img_size=64, drop_path_rate=0.1, **kwargs).train()

    def step(x):
        return sum(o.float().mean() for o in m(x))

    assert_one_graph_no_recompile(step, [(torch.randn(2, 3, size, size), ) for _ in range(3)],
                                  backward=True)


@pytest.mark.parametrize('dtype,tol', [(torch.float16, 5e-3), (torch.bfloat16, 3e-2)])
def test_half_precision_autocast_with_large_activations_and_grid(dtype, tol):
    """fp16 / bf16 autocast at 448 px (a 112x112 first-stage grid: 12,544 GSA queries) with a
    residual stream of hundreds: outputs and (loss-scaled) gradients finite and close to fp32."""
    torch.manual_seed(0)
    m = PyramidVisionLLaMA(arch=TINY, img_size=224, auto_scale=True, layer_scale_init_value=1.,
                           out_indices=(0, 3))
    with torch.no_grad():
        m.patch_embeds[0].projection.weight.mul_(100.)
    x = torch.randn(1, 3, 448, 448)

    def run(autocast):
        m.zero_grad()
        with torch.autocast('cpu', dtype=dtype, enabled=autocast):
            outs = m(x)
        torch.manual_seed(1)
        loss = sum((o.float() * torch.randn(o.shape)).mean() for o in outs)
        (loss * 2.**16).backward()  # as AmpOptimWrapper's loss scaler
        grads = torch.cat([p.grad.flatten() / 2.**16 for p in m.parameters() if p.grad is not None])
        return torch.cat([o.float().flatten() for o in outs]), grads

    ref, ref_grad = run(False)
    out, grad = run(True)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    assert (out - ref).norm() / ref.norm() < tol
    assert (grad - ref_grad).norm() / ref_grad.norm() < 4 * tol
