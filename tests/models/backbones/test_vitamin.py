"""ViTamin: exact sizes, timm parity (224 and a resized 256), featmap shapes at any input size,
position embedding, with_cp, freezing, layer-decay ids, bf16 autocast, registries, classifier;
torch.compile (one graph, no recompilation, dynamic shapes under inductor) and fp16 / bf16
autocast with activations of hundreds."""
import importlib
from unittest import mock

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

import visionllama_mm  # noqa: F401
from visionllama_mm.models.backbones import ViTamin, convert_timm_vitamin
from visionllama_mm.models.backbones.vitamin import Transition, layer_norm_2d
from visionllama_mm.models.layers import Attention
from visionllama_mm.registry import TOOLBOXES
from ...compile_checks import assert_no_graph_breaks

# timm 1.0.31 vitamin_*_224 with its 1000-class head (backbone + Linear(D, 1000))
TIMM_PARAMS = dict(small=22_262_696, base=87_901_032, large=333_556_616, large2=333_556_616)
# the trunk of the CLIP image tower: timm's vitamin_* without its head (num_classes=0), no
# projection; XL at 256 has no pos_embed
TRUNK_PARAMS = [('small', 224, 21_877_696), ('base', 224, 87_132_032),
                ('large', 224, 332_531_616), ('large2', 224, 332_531_616),
                ('xlarge', 256, 434_726_976)]
TINY = dict(stem_channels=8, channels=(8, 16), depths=(1, 2), embed_dims=32, num_layers=2,
            num_heads=2)


def _count(module):
    return sum(p.numel() for p in module.parameters())


def _randomize(module, seed=0):
    """Random weights everywhere (LayerNorm affines included), so no parameter is a no-op."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return module


@pytest.mark.parametrize('arch', sorted(TIMM_PARAMS))
def test_classifier_parameter_counts_equal_timm(arch):
    with torch.device('meta'):  # large has 333M parameters
        model = MODELS.build(dict(
            type='ImageClassifier', backbone=dict(type='ViTamin', arch=arch),
            head=dict(type='LinearClsHead', num_classes=1000,
                      in_channels=ViTamin.arch_zoo[arch]['embed_dims'])))
    assert _count(model) == TIMM_PARAMS[arch]


@pytest.mark.parametrize('arch, img_size, params', TRUNK_PARAMS,
                         ids=[a for a, _, _ in TRUNK_PARAMS])
def test_clip_trunk_parameter_counts_equal_the_spec(arch, img_size, params):
    with torch.device('meta'):
        model = ViTamin(arch, img_size=img_size)
    assert _count(model) == params
    assert (model.pos_embed is None) == (arch == 'xlarge')


@pytest.fixture(scope='module')
def timm_small():
    """A randomly initialised timm vitamin_small_224 trunk and its state dict (no head)."""
    import timm  # a pinned test requirement: missing, the parity tests fail
    torch.manual_seed(0)
    model = timm.create_model('vitamin_small_224', num_classes=0).eval()
    return model, model.state_dict()


def _timm_pooled(model, x):
    return model.forward_head(model.forward_features(x), pre_logits=True)


def test_timm_parity_small_224(timm_small):
    ref, sd = timm_small
    ours = ViTamin('small').eval()
    ours.load_state_dict(convert_timm_vitamin(sd, prefix=''), strict=True)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = _timm_pooled(ref, x), ours(x)
    assert len(b) == 1 and b[0].shape == (1, 384)
    assert (a - b[0]).abs().max() <= 1e-4


def test_timm_parity_small_256_from_a_224_state_dict(timm_small):
    """timm resizes pos_embed with its checkpoint filter; ours in ``_load_from_state_dict``."""
    import timm
    from timm.models.vitamin import checkpoint_filter_fn
    _, sd = timm_small
    ref = timm.create_model('vitamin_small_224', num_classes=0, img_size=256).eval()
    ref.load_state_dict(checkpoint_filter_fn(sd, ref), strict=True)
    ours = ViTamin('small', img_size=256).eval()
    ours.load_state_dict(convert_timm_vitamin(sd, prefix=''), strict=True)
    assert ours.pos_embed.shape == (1, 256, 384)
    assert torch.equal(ours.pos_embed, ref.pos_embed)
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (_timm_pooled(ref, x) - ours(x)[0]).abs().max() <= 1e-4


def test_timm_parity_base_224():
    # ~8-12 s on 2 shared cores (timm build + two forwards at batch 1)
    import timm
    torch.manual_seed(0)
    ref = timm.create_model('vitamin_base_224', num_classes=0).eval()
    ours = ViTamin('base').eval()
    ours.load_state_dict(convert_timm_vitamin(ref.state_dict(), prefix=''), strict=True)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (_timm_pooled(ref, x) - ours(x)[0]).abs().max() <= 1e-4


def test_converter_prefix_and_unknown_key():
    sd = {'fc_norm.weight': torch.ones(4), 'blocks.0.mlp.w0.weight': torch.zeros(2, 4),
          'blocks.0.mlp.w1.weight': torch.ones(2, 4)}
    out = convert_timm_vitamin(sd)
    assert sorted(out) == ['backbone.blocks.0.ffn.w12.weight', 'backbone.fc_norm.weight']
    w12 = out['backbone.blocks.0.ffn.w12.weight']
    assert w12.shape == (4, 4) and w12[:2].eq(0).all() and w12[2:].eq(1).all()  # gate first
    with pytest.raises(KeyError, match="unexpected key 'head.weight'"):
        convert_timm_vitamin({'head.weight': torch.zeros(1)})


@pytest.mark.parametrize('hw', [(64, 64), (70, 45)], ids=['64x64', '70x45'])
def test_featmap_shapes_ceil_divide(hw):
    H, W = hw
    model = ViTamin(TINY, img_size=64, out_type='featmap', out_indices=(0, 1, 2)).eval()
    assert model.fc_norm is None
    with torch.no_grad():
        outs = model(torch.randn(2, 3, H, W))
    c = lambda s, d: -(-s // d)  # noqa: E731
    assert [tuple(o.shape) for o in outs] == [
        (2, 8, c(H, 4), c(W, 4)), (2, 16, c(H, 8), c(W, 8)), (2, 32, c(H, 16), c(W, 16))]
    # dense maps: the MBConv ones NCHW, the transformer one a channels-last view of the tokens
    assert all(o.is_contiguous() or o.is_contiguous(memory_format=torch.channels_last)
               for o in outs)
    last = ViTamin(TINY, img_size=64, out_type='featmap', out_indices=-1).eval()
    with torch.no_grad():
        assert [tuple(o.shape) for o in last(torch.randn(1, 3, H, W))] == [
            (1, 32, c(H, 16), c(W, 16))]
        pooled = ViTamin(TINY, img_size=64).eval()(torch.randn(2, 3, H, W))
    assert len(pooled) == 1 and pooled[0].shape == (2, 32)


def test_pos_embed_interpolates_on_the_fly_and_xl_has_none():
    torch.manual_seed(0)
    model = _randomize(ViTamin(TINY, img_size=64)).eval()
    assert model.pos_embed.shape == (1, 16, 32)
    x = torch.randn(1, 3, 96, 80)
    with torch.no_grad():
        out = model(x)[0]
        # the same as a model laid out for 96x80 loaded from the 64 weights (resized on load)
        wide = ViTamin(TINY, img_size=(96, 80)).eval()
        wide.load_state_dict(model.state_dict(), strict=True)
        assert wide.pos_embed.shape == (1, 6 * 5, 32)
        assert torch.allclose(wide(x)[0], out, atol=1e-5)
        assert torch.equal(model.position_embedding(4, 4), model.pos_embed)
    assert torch.isfinite(out).all() and out.shape == (1, 32)
    no_pos = ViTamin({**TINY, 'pos_embed': False}, img_size=64)
    assert no_pos.pos_embed is None and 'pos_embed' not in no_pos.state_dict()
    assert no_pos(torch.randn(1, 3, 48, 32))[0].shape == (1, 32)
    with torch.device('meta'):
        assert ViTamin('xlarge').pos_embed is None
        assert ViTamin('large').pos_embed.shape == (1, 196, 1024)


def test_with_cp_same_outputs_and_gradients():
    torch.manual_seed(0)
    a = _randomize(ViTamin(TINY, img_size=32, drop_path_rate=0., out_type='featmap',
                           out_indices=(0, 1, 2))).train()
    b = ViTamin(TINY, img_size=32, drop_path_rate=0., out_type='featmap', out_indices=(0, 1, 2),
                with_cp=True).train()
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    outs_a, outs_b = a(x), b(x)
    for oa, ob in zip(outs_a, outs_b):
        assert torch.allclose(oa, ob, atol=1e-6)
    sum(o.square().mean() for o in outs_a).backward()
    sum(o.square().mean() for o in outs_b).backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert p.grad is not None and torch.allclose(p.grad, q.grad, atol=1e-6), n


@pytest.mark.parametrize('frozen_stages', [1, 2, 3])
def test_frozen_stages(frozen_stages):
    model = ViTamin(TINY, img_size=32, frozen_stages=frozen_stages).train()
    groups = [[model.stem, model.stages[0]], [model.stages[1]],
              [model.transition, *model.blocks, model.fc_norm]]
    for i, group in enumerate(groups):
        frozen = i < frozen_stages
        for m in group:
            assert m.training != frozen, (i, m)
            assert all(p.requires_grad != frozen for p in m.parameters()), (i, m)
            assert all(sub.training != frozen for sub in m.modules()), (i, m)
    assert model.pos_embed.requires_grad == (frozen_stages < 3)
    # frozen parts stay frozen through another train() (the Runner calls it every epoch)
    model.train()
    assert not model.stem.training and not any(p.requires_grad for p in model.stem.parameters())
    if frozen_stages < 3:  # what is left still trains
        model(torch.randn(1, 3, 32, 32))[0].sum().backward()
        assert model.stem.conv1.weight.grad is None and model.fc_norm.weight.grad is not None


def test_layer_decay_ids():
    model = ViTamin(TINY)  # 2 blocks: conv part 0, blocks 1..2, fc_norm / head 3
    n = TINY['num_layers'] + 2
    for name in ['stem.conv1.weight', 'stages.0.0.pre_norm.weight', 'stages.1.1.conv3_1x1.bias',
                 'transition.proj.weight', 'pos_embed']:
        assert model.get_layer_depth('backbone.' + name, 'backbone.') == (0, n), name
    assert model.get_layer_depth('backbone.blocks.0.attn.qkv.weight', 'backbone.') == (1, n)
    assert model.get_layer_depth('backbone.blocks.1.ffn.w12.weight', 'backbone.') == (2, n)
    assert model.get_layer_depth('backbone.fc_norm.weight', 'backbone.') == (3, n)
    assert model.get_layer_depth('head.fc.weight', 'backbone.') == (3, n)
    names = [k for k, _ in model.named_parameters()]
    ids = [model.get_layer_depth(k)[0] for k in names]
    assert ids == sorted(ids) and set(ids) == set(range(n))


def test_bf16_autocast_forward_backward():
    torch.manual_seed(0)
    model = ViTamin(TINY, img_size=32, drop_path_rate=0.1)
    model.init_weights()
    model.train()
    x = torch.randn(2, 3, 40, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(x)[0]
    assert out.shape == (2, 32) and torch.isfinite(out.float()).all()
    out.float().square().mean().backward()
    for n, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n


@pytest.mark.parametrize('toolbox', TOOLBOXES)
def test_registered_in_every_toolbox(toolbox):
    registry = importlib.import_module(f'{toolbox}.registry').MODELS
    model = registry.build(dict(type='ViTamin', arch=TINY, img_size=32, out_type='featmap',
                                out_indices=(0, 1, 2)))
    assert type(model) is ViTamin
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, 32, 32))
    assert [o.shape[1] for o in outs] == [8, 16, 32]


def test_image_classifier_without_neck():
    clf = MODELS.build(dict(type='ImageClassifier',
                            backbone=dict(type='ViTamin', arch=TINY, img_size=32),
                            head=dict(type='LinearClsHead', num_classes=10, in_channels=32)))
    assert not clf.with_neck
    clf.init_weights()
    x = torch.randn(2, 3, 32, 32)
    feats = clf.extract_feat(x)
    assert len(feats) == 1 and feats[0].shape == (2, 32)
    logits = clf(x, mode='tensor')
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    assert isinstance(clf.head.fc, nn.Linear)


def test_empty_batch_is_refused():
    with pytest.raises(ValueError, match='ViTamin: got an empty batch'):
        ViTamin(TINY, img_size=32)(torch.zeros(0, 3, 32, 32))


# ------------------------------------------------------------------------------ torch.compile
def test_dense_forward_is_one_graph():
    """The dense three-level forward (what UperNet and Mask R-CNN call) at the img_size grid,
    in training mode with drop path: one graph with no break. (The classifier's training loss
    forward, one graph compiled once: ``tests/tools/test_vitamin_compile.py``.)"""
    dense = ViTamin(TINY, img_size=48, out_type='featmap', out_indices=(0, 1, 2),
                    drop_path_rate=0.1).train()
    assert_no_graph_breaks(lambda x: sum(o.sum() for o in dense(x)), torch.randn(1, 3, 48, 48))


def test_off_grid_position_embedding_compiles_with_dynamic_shapes():
    """Token grids of a size other than img_size resize the position embedding on the fly; with
    dynamic shapes (three sizes in a row: the second recompiles with symbolic sizes) torch's
    antialiased bicubic resize cannot take the symbolic sizes, so it runs outside the graph.
    Values and gradients equal eager's. (AOT autograd with eager kernels: the failure was in
    tracing, before inductor.)"""
    model = _randomize(ViTamin(TINY, img_size=32))

    def tokens_plus_pos(t):  # (B, h, w, D) -> (B, h*w, D)
        return t.flatten(1, 2) + model.position_embedding(t.shape[1], t.shape[2])

    compiled = torch.compile(tokens_plus_pos, backend='aot_eager')
    torch._dynamo.reset()
    try:
        for h, w in ((3, 3), (4, 5), (6, 4)):
            t = torch.randn(2, h, w, 32)
            out = compiled(t)
            grad, = torch.autograd.grad(out.square().sum(), model.pos_embed)
            ref = tokens_plus_pos(t)
            torch.testing.assert_close(out, ref)
            torch.testing.assert_close(
                grad, torch.autograd.grad(ref.square().sum(), model.pos_embed)[0])
    finally:
        torch._dynamo.reset()


def test_inductor_compiles_layer_norm_then_conv_with_dynamic_shapes():
    """The smallest part that crashed inductor: a LayerNorm over the channels of a channels-last
    map followed by a conv (``Transition``; also every MBConv block's pre-norm and 1x1 conv).
    With dynamic shapes (here ``dynamic=True``; before, every recompilation after a graph break
    inside the model) inductor failed with "cannot determine truth value of Relational" on the
    permuted view saved for the conv's backward; ``layer_norm_2d`` gives the conv a tensor of its
    own under compile. Outputs and gradients equal eager's."""
    torch.manual_seed(0)
    module = _randomize(Transition(4, 8))
    x = torch.randn(2, 4, 10, 10).contiguous(memory_format=torch.channels_last)
    torch._dynamo.reset()
    try:
        xc = x.clone().requires_grad_()
        out = torch.compile(module, dynamic=True)(xc)
        grads = torch.autograd.grad(out.square().sum(), [xc, *module.parameters()])
    finally:
        torch._dynamo.reset()
    xe = x.clone().requires_grad_()
    ref = module(xe)
    ref_grads = torch.autograd.grad(ref.square().sum(), [xe, *module.parameters()])
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


def test_layer_norm_2d_compiled_form_equals_eager():
    """``layer_norm_2d``'s form under compile (affine after the permute back) equals the fused
    eager form, values and gradients, and keeps the channels-last layout and the input dtype."""
    torch.manual_seed(0)
    norm = _randomize(nn.LayerNorm(6, eps=1e-6))
    x = torch.randn(2, 6, 5, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    ref = layer_norm_2d(norm, x)
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, *norm.parameters()])
    with mock.patch('torch.compiler.is_compiling', return_value=True):
        out = layer_norm_2d(norm, x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = layer_norm_2d(norm, x.bfloat16())
    grads = torch.autograd.grad(out.square().sum(), [x, *norm.parameters()])
    assert out.is_contiguous(memory_format=torch.channels_last) and low.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


# --------------------------------------------------------------------------- mixed precision
def _loud(model):
    """Weights that drive the activations to hundreds, as trained models reach: every LayerNorm
    before a conv, attention or MLP scales by 20 (MBConv maps up to ~150, attention logits in the
    hundreds) and the transition conv by 10 (a transformer residual stream of hundreds)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('.weight') and ('norm' in name or '.ln' in name) \
                    and not name.startswith('fc_norm'):
                p.fill_(20.)
        model.transition.proj.weight.mul_(10.)
    return model


def _step(model, x, dtype):
    """Output (fp32 copy) and parameter gradients of one forward + backward under
    ``torch.autocast('cpu', dtype)`` (``None``: fp32)."""
    model.zero_grad()
    with torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = model(x)[0]
        loss = (out.float() * torch.linspace(-1, 1, out.shape[-1])).sum()
    loss.backward()
    return out.detach().float(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


# (dtype, max relative error of the output, of all gradients together, min cosine per tensor):
# about 10x the measured errors (fp16 4.0e-4 / 6.8e-4 / 0.99997, bf16 3.5e-3 / 4.9e-3 / 0.998)
AMP = [(torch.float16, 5e-3, 1e-2, 0.999), (torch.bfloat16, 5e-2, 5e-2, 0.99)]


@pytest.mark.parametrize('dtype, out_tol, grad_tol, min_cos', AMP)
def test_autocast_fp16_bf16_stays_finite_and_close_to_fp32(dtype, out_tol, grad_tol, min_cos):
    """A 128x128 batch (32x32 MBConv grid, 8x8 tokens) with activations of hundreds: the
    pooled output and every gradient finite and close to fp32 under fp16 and bf16 autocast."""
    torch.manual_seed(0)
    model = ViTamin(TINY, img_size=128)
    model.init_weights()
    model = _loud(model).train()
    peaks = []
    model.blocks[0].register_forward_hook(lambda m, i, o: peaks.append(o.abs().max().item()))
    x = torch.randn(2, 3, 128, 128)
    ref, ref_grads = _step(model, x, None)
    assert peaks[0] > 100  # as loud as intended
    out, grads = _step(model, x, dtype)
    assert torch.isfinite(out).all() and all(torch.isfinite(v).all() for v in grads.values())
    assert _rel(out, ref) < out_tol
    flat = torch.cat([grads[n].flatten() for n in ref_grads])
    assert _rel(flat, torch.cat([v.flatten() for v in ref_grads.values()])) < grad_tol
    for n, v in ref_grads.items():
        assert F.cosine_similarity(grads[n].flatten(), v.flatten(), dim=0) > min_cos, n


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_layer_norm_statistics_are_fp32_under_autocast(dtype):
    """Channels of ~1,000 +- 1 over 384 channels (the sum of squares overflows fp16, and a
    low-precision variance would cancel): ``layer_norm_2d`` on a map and the transformer's
    ``F.layer_norm`` give fp32's result under autocast (torch accumulates layer-norm statistics
    in fp32 for fp16 / bf16 inputs)."""
    g = torch.Generator().manual_seed(0)
    x = (1000 + torch.randn(2, 384, 4, 4, generator=g)).to(dtype)
    norm = nn.LayerNorm(384, eps=1e-6)
    ref = layer_norm_2d(norm, x.float())
    with torch.autocast('cpu', dtype=dtype):
        out = layer_norm_2d(norm, x)
        rows = norm(x.permute(0, 2, 3, 1))
    tol = 2 * torch.finfo(dtype).eps * ref.abs().max()
    assert torch.isfinite(out).all() and (out.float() - ref).abs().max() <= tol
    assert (rows.float() - ref.permute(0, 2, 3, 1)).abs().max() <= tol


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_attention_with_large_logits_stays_finite(dtype):
    """ViTamin's attention (SDPA) at the 64x64 token grid of the 1024-pixel dense configs, with
    queries and keys up to ~80 (logits in the thousands, whose exp() is far beyond fp16): SDPA
    takes the softmax in fp32, so the output is finite and close to fp32 under fp16 and bf16
    autocast."""
    torch.manual_seed(0)
    attn = Attention(32, num_heads=2)
    x = torch.randn(1, 4096, 32) * 30
    with torch.no_grad():
        q, k, _ = attn.qkv(x).view(1, 4096, 3, 2, 16).unbind(2)
        logits = torch.einsum('bnhd,bmhd->bhnm', q, k) / 4
        assert logits.abs().max() > 1000  # exp() of 11.1 overflows fp16
        ref = attn(x)
        with torch.autocast('cpu', dtype=dtype):
            out = attn(x)
    assert torch.isfinite(out).all()
    # measured 1.0e-2 (fp16) and 7.8e-2 (bf16): the rounding of q and k, not the softmax
    assert _rel(out.float(), ref) < (3e-2 if dtype == torch.float16 else 0.2)


def test_bf16_autocast_runs_the_convolutions_in_bf16():
    """One code path for every device: under autocast the convolutions (the depthwise ones
    included) and the shortcut pool run in the autocast dtype."""
    model = ViTamin(TINY, img_size=32).train()
    dtypes = {}
    for name in ('stages.0.0.conv2_kxk', 'stages.0.0.shortcut.pool', 'stages.1.0.conv2_kxk'):
        model.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: dtypes.__setitem__(name, o.dtype))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        model(torch.randn(2, 3, 32, 32))[0].float().sum().backward()
    assert set(dtypes.values()) == {torch.bfloat16}, dtypes
