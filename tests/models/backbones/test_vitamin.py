"""ViTamin: exact sizes, timm parity (224 and a resized 256), featmap shapes at any input size,
position embedding, with_cp, freezing, layer-decay ids, bf16 autocast, registries, classifier."""
import importlib

import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

import visionllama_mm  # noqa: F401
from visionllama_mm.models.backbones import ViTamin, convert_timm_vitamin
from visionllama_mm.registry import TOOLBOXES

# timm 1.0.31 vitamin_*_224 with its 1000-class head (backbone + Linear(D, 1000))
TIMM_PARAMS = dict(small=22_262_696, base=87_901_032, large=333_556_616, large2=333_556_616)
# spec vitamin.md §5.3: the CLIP image trunk (no projection); XL at 256 has no pos_embed
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
    timm = pytest.importorskip('timm')
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
    timm = pytest.importorskip('timm')
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


def test_shortcut_pool_equals_avg_pool2d_without_padding_counts():
    """The MBConv shortcut pool (a ones-kernel depthwise conv over the window counts when
    differentiated, faster on CPU) equals AvgPool2d(3, 2, 1, count_include_pad=False), values and
    gradients, on odd sizes and channels-last; also under bf16 autocast (computed in fp32)."""
    import torch.nn.functional as F
    from visionllama_mm.models.backbones.vitamin import avg_pool_3x3_s2
    torch.manual_seed(0)
    x = torch.randn(2, 8, 15, 14).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    ours, ref = avg_pool_3x3_s2(x), F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    assert ours.shape == (2, 8, 8, 7)
    torch.testing.assert_close(ours, ref)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(ref, x, g)[0])
    with torch.no_grad():
        torch.testing.assert_close(avg_pool_3x3_s2(x), ref)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = avg_pool_3x3_s2(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)
