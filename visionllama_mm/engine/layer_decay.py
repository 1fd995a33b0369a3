"""Layer-wise learning-rate decay for any backbone that implements ``get_layer_depth``.

mmseg 1.2.2's ``LayerDecayOptimizerConstructor`` only accepts backbones whose class name contains
ConvNeXt/BEiT/MAE, and mmdet 3.3's ViTDet constructor numbers ``.blocks.`` only. This one
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
token and ``custom_no_decay`` names get no weight decay unless a ``paramwise_cfg`` rule below says
otherwise.
"""
from typing import Dict, List, Optional, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm, _InstanceNorm

from ..registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['LayerwiseDecayOptimWrapperConstructor']

# the norm layers mmengine's DefaultOptimWrapperConstructor knows, plus torch's RMSNorm
_NORMS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm)
_DECAY_MULTS = ('norm_decay_mult', 'bias_decay_mult', 'dwconv_decay_mult', 'flat_decay_mult')
SUPPORTED_KEYS = ('layer_decay_rate', 'custom_no_decay', 'custom_keys', 'bias_lr_mult') + _DECAY_MULTS
SUPPORTED_CUSTOM_KEYS = ('lr_mult', 'decay_mult')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerwiseDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay plus the ``paramwise_cfg`` rules of mmengine's default constructor.

    ``paramwise_cfg`` keys (any other key is refused with a ``ValueError``):

    - ``layer_decay_rate`` (float, required): lr x ``rate ** (num_layers - 1 - layer_id)``.
    - ``custom_keys`` (dict): ``{substring: dict(lr_mult=..., decay_mult=...)}``. The longest
      matching substring of the parameter name wins (ties alphabetical, as in mmengine); its
      ``lr_mult`` multiplies the layer-decayed lr, ``decay_mult`` the base weight decay, and no other
      rule applies to that parameter.
    - ``custom_no_decay`` (list of name substrings, default ``['cls_token', 'pos_embed']``): weight
      decay 0 for parameters not matched by ``custom_keys``.
    - ``bias_lr_mult``: lr multiplier of biases outside norm layers.
    - ``norm_decay_mult``, ``bias_decay_mult``, ``dwconv_decay_mult``, ``flat_decay_mult``: weight
      decay multipliers of norm-layer parameters, biases, depth-wise conv parameters and 1-D
      parameters, tried in this order (mmengine's), the first that applies wins.

    Parameters no rule names keep the package default: weight decay 0 for biases and 1-D
    parameters, the base weight decay otherwise. Parameters with the same (layer, lr, weight decay)
    share one optimizer group.
    """

    def _validate_cfg(self) -> None:
        super()._validate_cfg()
        name = type(self).__name__
        unknown = sorted(set(self.paramwise_cfg) - set(SUPPORTED_KEYS))
        if unknown:
            raise ValueError(f'{name}: paramwise_cfg key(s) {unknown} not supported; supported '
                             f'keys: {list(SUPPORTED_KEYS)}.')
        if self.paramwise_cfg.get('layer_decay_rate') is None:
            raise ValueError(f'{name}: paramwise_cfg needs layer_decay_rate.')
        for key, cfg in self.paramwise_cfg.get('custom_keys', {}).items():
            bad = sorted(set(cfg) - set(SUPPORTED_CUSTOM_KEYS))
            if bad:
                raise ValueError(f'{name}: paramwise_cfg.custom_keys[{key!r}] has unsupported '
                                 f'field(s) {bad}; supported fields: '
                                 f'{list(SUPPORTED_CUSTOM_KEYS)}.')

    def _param_rule(self, module: nn.Module, local_name: str, full_name: str,
                    param: nn.Parameter) -> Tuple[float, float]:
        """Returns ``(lr_mult, weight_decay)`` of one parameter before layer decay."""
        cfg = self.paramwise_cfg
        base_wd = self.base_wd or 0.
        custom_keys: Dict[str, dict] = cfg.get('custom_keys', {})
        for key in sorted(sorted(custom_keys), key=len, reverse=True):
            if key in full_name:
                return (custom_keys[key].get('lr_mult', 1.),
                        base_wd * custom_keys[key].get('decay_mult', 1.))
        is_norm = isinstance(module, _NORMS)
        is_bias = local_name == 'bias'
        lr_mult = 1.
        if is_bias and not is_norm and cfg.get('bias_lr_mult') is not None:
            lr_mult = cfg['bias_lr_mult']
        if any(key in full_name for key in cfg.get('custom_no_decay', ['cls_token', 'pos_embed'])):
            return lr_mult, 0.
        applies = dict(
            norm_decay_mult=is_norm,
            bias_decay_mult=is_bias,
            dwconv_decay_mult=(isinstance(module, nn.Conv2d)
                               and module.in_channels == module.groups),
            flat_decay_mult=param.ndim == 1)
        for key in _DECAY_MULTS:
            if applies[key] and cfg.get(key) is not None:
                return lr_mult, base_wd * cfg[key]
        return lr_mult, 0. if (is_bias or param.ndim == 1) else base_wd

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   **kwargs) -> None:
        rate = self.paramwise_cfg['layer_decay_rate']
        model = module.module if hasattr(module, 'module') else module
        backbone: Optional[nn.Module] = getattr(model, 'backbone', None)
        if backbone is None or not hasattr(backbone, 'get_layer_depth'):
            raise TypeError(
                f'LayerwiseDecayOptimWrapperConstructor: {type(model).__name__}.backbone '
                f'({type(backbone).__name__}) has no get_layer_depth(name, prefix); layer decay '
                'needs one.')
        groups: Dict[tuple, dict] = {}
        seen = set()
        for module_name, submodule in model.named_modules():
            for local_name, param in submodule.named_parameters(recurse=False):
                if not param.requires_grad or id(param) in seen:
                    continue
                seen.add(id(param))
                name = f'{module_name}.{local_name}' if module_name else local_name
                lr_mult, weight_decay = self._param_rule(submodule, local_name, name, param)
                layer_id, num_layers = backbone.get_layer_depth(name, 'backbone.')
                key = (layer_id, lr_mult, weight_decay)
                if key not in groups:
                    scale = rate**(num_layers - 1 - layer_id)
                    groups[key] = dict(params=[], param_names=[],
                                       lr=self.base_lr * scale * lr_mult, lr_scale=scale,
                                       weight_decay=weight_decay, layer_id=layer_id)
                groups[key]['params'].append(param)
                groups[key]['param_names'].append(name)
        for key in sorted(groups):
            params.append(groups[key])
        summary = ', '.join(f'layer {k[0]}: lr x{groups[k]["lr_scale"] * k[1]:.3g} '
                            f'wd {k[2]:.3g}' for k in sorted(groups))
        print_log(f'[visionllama_mm] layer-wise lr decay {rate}: {summary}', logger='current')
