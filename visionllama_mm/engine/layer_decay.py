"""Layer-wise learning-rate decay for any backbone that implements ``get_layer_depth``.

mmseg 1.2.2's ``LayerDecayOptimizerConstructor`` only accepts backbones whose class name contains
ConvNeXt/BEiT/MAE, and mmdet 3.3's ViTDet constructor numbers ``.blocks.`` only (spec §6.4). This one
asks the backbone: ``backbone.get_layer_depth(name, 'backbone.') -> (layer_id, num_layers)``, and
scales each parameter's lr by ``layer_decay_rate ** (num_layers - 1 - layer_id)``. Registered into
mmpretrain, mmseg and mmdet.

    optim_wrapper = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        constructor='LayerwiseDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.65))

For a 12-block VisionLLaMA (``num_layers`` = 14): the patch embedding gets 0.65^13, block i
0.65^(12 - i), final norms, neck and heads 1. Biases, 1-D parameters (norms, LayerScale), the class
token and ``custom_no_decay`` names get no weight decay.
"""
from typing import List, Optional

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from ..registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['LayerwiseDecayOptimWrapperConstructor']


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerwiseDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``paramwise_cfg``: ``layer_decay_rate`` (required), ``custom_no_decay`` (list of name
    substrings, default ``['cls_token', 'pos_embed']``)."""

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   **kwargs) -> None:
        rate = self.paramwise_cfg.get('layer_decay_rate')
        if rate is None:
            raise ValueError('LayerwiseDecayOptimWrapperConstructor: paramwise_cfg needs '
                             'layer_decay_rate.')
        model = module.module if hasattr(module, 'module') else module
        backbone: Optional[nn.Module] = getattr(model, 'backbone', None)
        if backbone is None or not hasattr(backbone, 'get_layer_depth'):
            raise TypeError(
                f'LayerwiseDecayOptimWrapperConstructor: {type(model).__name__}.backbone '
                f'({type(backbone).__name__}) has no get_layer_depth(name, prefix); layer decay '
                'needs one.')
        no_decay_names = self.paramwise_cfg.get('custom_no_decay', ['cls_token', 'pos_embed'])
        base_wd = self.base_wd or 0.
        groups = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            layer_id, num_layers = backbone.get_layer_depth(name, 'backbone.')
            no_decay = (param.ndim == 1 or name.endswith('.bias')
                        or any(key in name for key in no_decay_names))
            key = (layer_id, no_decay)
            if key not in groups:
                scale = rate**(num_layers - 1 - layer_id)
                groups[key] = dict(params=[], param_names=[], lr=self.base_lr * scale,
                                   lr_scale=scale, weight_decay=0. if no_decay else base_wd,
                                   layer_id=layer_id)
            groups[key]['params'].append(param)
            groups[key]['param_names'].append(name)
        for key in sorted(groups):
            params.append(groups[key])
        summary = ', '.join(f'layer {k[0]}{" (no wd)" if k[1] else ""}: '
                            f'lr x{groups[k]["lr_scale"]:.3g}' for k in sorted(groups))
        print_log(f'[visionllama_mm] layer-wise lr decay {rate}: {summary}', logger='current')
