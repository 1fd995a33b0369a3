"""The layer-decay constructor works from mmseg's and mmdet's registries with our backbones."""
import importlib

import pytest
import torch.nn as nn

import visionllama_mm  # noqa: F401
from visionllama_mm.models.backbones import VisionLLaMA


class _Model(nn.Module):

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.decode_head = nn.Linear(8, 2)


@pytest.mark.parametrize('toolbox', ['mmseg', 'mmdet', 'mmpretrain'])
def test_layer_ids_and_scales(toolbox):
    registry = importlib.import_module(f'{toolbox}.registry')
    tiny = dict(embed_dims=8, num_layers=3, num_heads=2, feedforward_channels=16)
    model = _Model(VisionLLaMA(arch=tiny, with_cls_token=False, out_type='featmap'))
    wrapper = registry.OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='LayerwiseDecayOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper',
                               optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)),
        paramwise_cfg=dict(layer_decay_rate=0.5)))(model)
    lrs = {}
    for group in wrapper.optimizer.param_groups:
        for name in group['param_names']:
            lrs[name] = (group['lr'], group['weight_decay'])
    # num_layers = 3 + 2: patch embed 0.5^4, block i 0.5^(3-i), rest 1
    assert lrs['backbone.patch_embed.projection.weight'] == (0.5**4, 0.05)
    assert lrs['backbone.layers.0.attn.qkv.weight'] == (0.5**3, 0.05)
    assert lrs['backbone.layers.2.ffn.w3.weight'] == (0.5, 0.05)
    assert lrs['backbone.layers.2.ln1.weight'] == (0.5, 0.0)
    assert lrs['backbone.layers.1.attn.qkv.bias'] == (0.25, 0.0)
    assert lrs['decode_head.weight'] == (1.0, 0.05)


def test_backbone_without_layer_depth_is_refused():
    from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
    model = _Model(nn.Conv2d(3, 8, 3))
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='LayerwiseDecayOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0)),
        paramwise_cfg=dict(layer_decay_rate=0.5)))
    with pytest.raises(TypeError, match='Conv2d.*get_layer_depth'):
        ctor(model)


def _lrs_and_wds(paramwise_cfg, weight_decay=0.05):
    from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
    tiny = dict(embed_dims=8, num_layers=3, num_heads=2, feedforward_channels=16)
    model = _Model(VisionLLaMA(arch=tiny, with_cls_token=True, out_type='featmap'))
    wrapper = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='LayerwiseDecayOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper',
                               optimizer=dict(type='AdamW', lr=1.0, weight_decay=weight_decay)),
        paramwise_cfg=paramwise_cfg))(model)
    out = {}
    for group in wrapper.optimizer.param_groups:
        for name in group['param_names']:
            out[name] = (group['lr'], group['weight_decay'])
    assert len(out) == sum(1 for _ in model.parameters())
    return out


def test_custom_keys_follow_mmengine_semantics():
    # longest matching key wins; lr_mult multiplies the layer-decayed lr, decay_mult the base wd;
    # a custom key overrides every other rule (here: the 1-D / bias no-decay default)
    lrs = _lrs_and_wds(dict(layer_decay_rate=0.5, custom_keys={
        'layers.1': dict(lr_mult=0.1),
        'layers.1.attn': dict(lr_mult=2.0, decay_mult=0.5),
        'decode_head': dict(lr_mult=10.0, decay_mult=0.0),
        'cls_token': dict(decay_mult=1.0)}))
    assert lrs['backbone.layers.1.attn.qkv.weight'] == (0.25 * 2.0, 0.025)
    assert lrs['backbone.layers.1.attn.qkv.bias'] == (0.25 * 2.0, 0.025)
    assert lrs['backbone.layers.1.ffn.w3.weight'] == (0.25 * 0.1, 0.05)
    assert lrs['backbone.layers.1.ln1.weight'] == (0.25 * 0.1, 0.05)
    assert lrs['decode_head.weight'] == (10.0, 0.0)
    assert lrs['backbone.cls_token'] == (0.5**4, 0.05)
    # untouched parameters keep the defaults
    assert lrs['backbone.layers.0.attn.qkv.weight'] == (0.5**3, 0.05)
    assert lrs['backbone.layers.2.ln1.weight'] == (0.5, 0.0)


def test_decay_mults_follow_mmengine_order():
    # norm > bias > flat, as in mmengine's DefaultOptimWrapperConstructor
    lrs = _lrs_and_wds(dict(layer_decay_rate=0.5, norm_decay_mult=0.2, bias_decay_mult=0.4,
                            flat_decay_mult=0.6, bias_lr_mult=3.0))
    assert lrs['backbone.layers.0.attn.qkv.bias'] == (0.5**3 * 3.0, 0.05 * 0.4)
    assert lrs['backbone.layers.0.attn.qkv.weight'] == (0.5**3, 0.05)
    assert lrs['decode_head.bias'] == (3.0, 0.05 * 0.4)
    norms = [n for n, m in _Model(VisionLLaMA(
        arch=dict(embed_dims=8, num_layers=3, num_heads=2, feedforward_channels=16),
        out_type='featmap')).named_modules() if isinstance(m, (nn.LayerNorm, nn.RMSNorm))]
    assert norms, 'the tiny model has norm layers'
    for norm in norms:
        assert lrs[f'{norm}.weight'][1] == pytest.approx(0.05 * 0.2)
    # the class token is 3-D: the default custom_no_decay keeps it at 0
    assert lrs['backbone.cls_token'][1] == 0.0


@pytest.mark.parametrize('paramwise_cfg, match', [
    (dict(layer_decay_rate=0.5, dcn_offset_lr_mult=0.1),
     r"\['dcn_offset_lr_mult'\] not supported; supported keys: \['layer_decay_rate'"),
    (dict(layer_decay_rate=0.5, layer_decay=0.5), r"\['layer_decay'\] not supported"),
    (dict(layer_decay_rate=0.5, custom_keys={'head': dict(lr_mult=1.0, momentum=0.9)}),
     r"custom_keys\['head'\] has unsupported field\(s\) \['momentum'\]; supported fields: "
     r"\['lr_mult', 'decay_mult'\]"),
    (dict(norm_decay_mult=0.0), 'needs layer_decay_rate'),
])
def test_unsupported_paramwise_keys_are_refused(paramwise_cfg, match):
    from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
    with pytest.raises(ValueError, match=match):
        OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
            type='LayerwiseDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(type='OptimWrapper',
                                   optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)),
            paramwise_cfg=paramwise_cfg))
