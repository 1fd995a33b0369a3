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
