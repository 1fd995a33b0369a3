"""ConvNeXt V2: exact sizes, stock parity, any input size, layer-decay ids, freezing, errors;
torch.compile (one graph, no recompilation) and fp16 / bf16 autocast."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.models.backbones import ConvNeXt
from mmpretrain.registry import MODELS

import visionllama_mm  # noqa: F401
from visionllama_mm.models.backbones import ConvNeXtV2
from visionllama_mm.models.layers import grn_channels_last, norm_channels
from ...compile_checks import assert_no_graph_breaks, assert_one_graph_no_recompile

# exact parameter counts of the official ConvNeXt V2 sizes (= timm's convnextv2_*) with their
# 1000-class linear head
PARAMS = dict(atto=3_708_400, femto=5_233_240, pico=9_066_280, nano=15_623_800,
              tiny=28_635_496, base=88_717_800, large=197_956_840, huge=660_289_640)
TINY = dict(depths=[1, 1, 2, 1], channels=[8, 16, 24, 32])


def _randomize(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return module


@pytest.mark.parametrize('arch', sorted(PARAMS))
def test_parameter_counts_equal_the_spec(arch):
    with torch.device('meta'):  # huge has 660M parameters
        model = MODELS.build(dict(
            type='ImageClassifier', backbone=dict(type='ConvNeXtV2', arch=arch),
            head=dict(type='LinearClsHead', num_classes=1000,
                      in_channels=ConvNeXtV2.arch_zoo[arch]['channels'][-1])))
    assert sum(p.numel() for p in model.parameters()) == PARAMS[arch]


def test_classifier_with_no_neck_and_stock_parity():
    """The default output is the pooled, normalised (B, C) feature; at multiples of 32 every
    output equals mmpretrain's ConvNeXt(use_grn=True, layer_scale_init_value=0) with the same
    weights (keys identical)."""
    ours = _randomize(ConvNeXtV2(TINY, out_indices=(0, 1, 2, 3), gap_before_final_norm=False))
    stock = ConvNeXt(TINY, use_grn=True, layer_scale_init_value=0., out_indices=[0, 1, 2, 3],
                     gap_before_final_norm=False)
    stock.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 96)
    ours.eval()
    stock.eval()  # (mmpretrain's ConvNeXt.train returns None, so no chaining)
    for a, b in zip(ours(x), stock(x)):
        assert torch.allclose(a, b, atol=1e-5)
    clf = MODELS.build(dict(type='ImageClassifier', backbone=dict(type='ConvNeXtV2', arch=TINY),
                            head=dict(type='LinearClsHead', num_classes=5, in_channels=32)))
    feats = clf.extract_feat(x)
    assert len(feats) == 1 and feats[0].shape == (2, 32)
    assert clf(x, mode='tensor').shape == (2, 5)


def test_any_input_size_gives_ceil_divided_maps():
    model = ConvNeXtV2(TINY, out_indices=(0, 1, 2, 3), gap_before_final_norm=False).eval()
    outs = model(torch.randn(1, 3, 75, 56))
    assert [tuple(o.shape) for o in outs] == [(1, 8, 19, 14), (1, 16, 10, 7), (1, 24, 5, 4),
                                              (1, 32, 3, 2)]
    pooled = ConvNeXtV2(TINY).eval()(torch.randn(2, 3, 75, 56))
    assert pooled[0].shape == (2, 32)


def test_layer_decay_ids_single_and_group():
    single = ConvNeXtV2('tiny')  # depths 3, 3, 9, 3: ids 1..18, heads 19, 20 ids
    assert single.get_layer_depth('backbone.downsample_layers.0.0.weight', 'backbone.') == (1, 20)
    assert single.get_layer_depth('backbone.stages.0.0.norm.weight', 'backbone.') == (1, 20)
    assert single.get_layer_depth('backbone.downsample_layers.2.1.weight', 'backbone.') == (7, 20)
    assert single.get_layer_depth('backbone.stages.2.4.grn.gamma', 'backbone.') == (11, 20)
    assert single.get_layer_depth('backbone.stages.3.2.grn.beta', 'backbone.') == (18, 20)
    assert single.get_layer_depth('backbone.norm3.weight', 'backbone.') == (19, 20)
    assert single.get_layer_depth('head.fc.weight', 'backbone.') == (19, 20)
    group = ConvNeXtV2('base', layer_decay_type='group')
    stock = ConvNeXt('base', use_grn=True, layer_scale_init_value=0.)
    for name, _ in stock.named_parameters():
        assert group.get_layer_depth(name) == stock.get_layer_depth(name), name
    assert group.get_layer_depth('head.fc.weight', 'backbone.') == (13, 14)


def test_with_cp_and_frozen_stages():
    torch.manual_seed(0)
    a = _randomize(ConvNeXtV2(TINY, drop_path_rate=0.))
    b = _randomize(ConvNeXtV2(TINY, drop_path_rate=0., with_cp=True))
    x = torch.randn(2, 3, 64, 64)
    a(x)[0].sum().backward()
    b(x)[0].sum().backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), n
    frozen = ConvNeXtV2(TINY, frozen_stages=2).train()
    assert not any(p.requires_grad for p in frozen.stages[1].parameters())
    assert not frozen.downsample_layers[1].training
    assert all(p.requires_grad for p in frozen.stages[2].parameters())


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='small'), "unknown arch 'small'; valid names: atto, base, femto, huge"),
    (dict(arch=dict(depths=[1, 1, 1], channels=[8, 16, 24])), '4 depths and 4 channels'),
    (dict(drop_path_rate=1.5), r'drop_path_rate must be in \[0, 1\)'),
    (dict(frozen_stages=5), 'frozen_stages must be in 0..4'),
    (dict(out_indices=(4, )), 'out_indices must be stage numbers'),
    (dict(layer_decay_type='blocks'), 'layer_decay_type must be one of'),
])
def test_bad_arguments_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvNeXtV2(**{'arch': TINY, **kwargs})


def test_empty_batch_is_refused():
    with pytest.raises(ValueError, match='empty batch'):
        ConvNeXtV2(TINY)(torch.zeros(0, 3, 32, 32))


# ------------------------------------------------------------------------------ torch.compile
def test_training_forward_is_one_graph_without_recompilation():
    """The classifier's training forward (drop path on) plus a scalar loss traces into one graph
    with no break, and three steps of fresh same-shape batches compile it once; the dense
    multi-stage forward of an input that is no multiple of 32 (padded inside) has no break."""
    clf = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='ConvNeXtV2', arch=TINY, drop_path_rate=0.1),
        head=dict(type='LinearClsHead', num_classes=5, in_channels=32))).train()

    def loss(x):
        return clf(x, mode='tensor').float().square().mean()

    assert_one_graph_no_recompile(loss, [(torch.randn(2, 3, 64, 64), ) for _ in range(3)],
                                  backward=True)
    dense = ConvNeXtV2(TINY, out_indices=(0, 1, 2, 3), gap_before_final_norm=False).train()
    assert_no_graph_breaks(lambda x: sum(o.sum() for o in dense(x)), torch.randn(1, 3, 75, 56))


# --------------------------------------------------------------------------- mixed precision
def _loud(model, seed=0):
    """Weights that drive the blocks' MLP activations to hundreds (up to ~1,300), as trained
    models reach: LN scale 20, first pointwise Linear of std 15 / sqrt(fan-in), GRN non-zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'stages' in name and name.endswith('norm.weight'):
                p.fill_(20.)
            elif 'pointwise_conv' in name and name.endswith('weight'):
                scale = 15. if 'pointwise_conv1' in name else 1.
                p.copy_(torch.randn(p.shape, generator=g) * scale / p.shape[1] ** .5)
            elif '.grn.' in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def _step(model, x, weights, dtype):
    """Outputs (fp32 copies) and parameter gradients of one forward + backward, under
    ``torch.autocast('cpu', dtype)`` (``None``: fp32)."""
    model.zero_grad()
    with torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        outs = model(x)
        loss = sum((o.float() * w).sum() for o, w in zip(outs, weights))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return [o.detach().float() for o in outs], grads


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


# (dtype, max relative error of the outputs, of all gradients together, min cosine per tensor):
# 2.5-6x the measured errors (fp16 1.6e-3 / 1.7e-2 / 0.9996, bf16 1.2e-2 / 0.10 / 0.984), which
# follow the formats' 11- and 8-bit mantissas
AMP = [(torch.float16, 1e-2, 5e-2, 0.995), (torch.bfloat16, 5e-2, 0.25, 0.95)]


@pytest.mark.parametrize('dtype, out_tol, grad_tol, min_cos', AMP)
def test_autocast_fp16_bf16_stays_finite_and_close_to_fp32(dtype, out_tol, grad_tol, min_cos):
    """Every stage's map of a 256x256 image (a 64x64 first-stage grid) with MLP activations of
    hundreds: outputs and gradients finite and close to fp32 under fp16 and bf16 autocast."""
    model = _loud(ConvNeXtV2(TINY, out_indices=(0, 1, 2, 3), gap_before_final_norm=False))
    peaks = []
    model.stages[0][0].pointwise_conv1.register_forward_hook(
        lambda m, i, o: peaks.append(o.detach().abs().max().item()))
    x = torch.randn(1, 3, 256, 256)
    g = torch.Generator().manual_seed(1)
    weights = [torch.randn(1, c, 256 // 4 // 2**i, 256 // 4 // 2**i, generator=g)
               for i, c in enumerate(TINY['channels'])]
    ref, ref_grads = _step(model, x, weights, None)
    assert peaks[0] > 500  # the activations are as loud as intended
    outs, grads = _step(model, x, weights, dtype)
    assert all(torch.isfinite(o).all() for o in outs)
    assert all(torch.isfinite(v).all() for v in grads.values())
    assert max(_rel(o, r) for o, r in zip(outs, ref)) < out_tol
    flat = torch.cat([grads[n].flatten() for n in ref_grads])
    assert _rel(flat, torch.cat([v.flatten() for v in ref_grads.values()])) < grad_tol
    for n, v in ref_grads.items():
        assert F.cosine_similarity(grads[n].flatten(), v.flatten(), dim=0) > min_cos, n


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_grn_norm_is_computed_in_fp32(dtype):
    """Activations of ~300 over a 256x256 map: each channel's L2 norm (~77,000) overflows fp16
    (max 65,504) when computed in fp16, and its square overflows long before; GRN takes the norm
    in fp32, so its fp16 / bf16 result is finite and equals the fp32 formula to the format's
    rounding, in and out of autocast."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(1, 256, 256, 4, generator=g) * 300).to(dtype)
    gamma, beta = torch.randn(4, generator=g), torch.randn(4, generator=g)
    if dtype == torch.float16:
        assert torch.isinf(torch.linalg.vector_norm(x, dim=(1, 2))).all()  # the naive norm
    xf = x.float()
    gx = xf.square().sum((1, 2), keepdim=True).sqrt()
    ref = gamma * (xf * gx / (gx.mean(-1, keepdim=True) + 1e-6)) + beta + xf
    tol = 4 * torch.finfo(dtype).eps * ref.abs().max()
    out = grn_channels_last(x, gamma.to(dtype), beta.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() <= tol
    with torch.autocast('cpu', dtype=dtype):  # fp32 parameters, as in a model under AMP
        out = grn_channels_last(x, gamma, beta)
    assert torch.isfinite(out).all() and (out.float() - ref).abs().max() <= tol


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_layer_norm_statistics_are_fp32_under_autocast(dtype):
    """Channels of ~1,000 +- 1 over 768 channels (the sum of squares overflows fp16, and a
    low-precision variance would cancel): the LayerNorms of the backbone (``F.layer_norm`` on
    (..., C) and ``norm_channels`` on maps) give fp32's result under autocast, because torch
    accumulates layer-norm statistics in fp32 for fp16 / bf16 inputs."""
    g = torch.Generator().manual_seed(0)
    x = (1000 + torch.randn(2, 768, 4, 4, generator=g)).to(dtype)
    norm = torch.nn.LayerNorm(768, eps=1e-6)
    ref = norm_channels(norm, x.float())
    with torch.autocast('cpu', dtype=dtype):
        out = norm_channels(norm, x)
        rows = F.layer_norm(x.permute(0, 2, 3, 1), (768, ), norm.weight, norm.bias, 1e-6)
    tol = 2 * torch.finfo(dtype).eps * ref.abs().max()
    assert torch.isfinite(out).all() and (out.float() - ref).abs().max() <= tol
    assert (rows.float() - ref.permute(0, 2, 3, 1)).abs().max() <= tol
