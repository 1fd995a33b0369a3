"""ConvNeXt V2: exact sizes, stock parity, any input size, layer-decay ids, freezing, errors."""
import pytest
import torch
from mmpretrain.models.backbones import ConvNeXt
from mmpretrain.registry import MODELS

import visionllama_mm  # noqa: F401
from visionllama_mm.models.backbones import ConvNeXtV2

# spec convnextv2.md §1.3: exact parameter counts with a 1000-class linear head
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
