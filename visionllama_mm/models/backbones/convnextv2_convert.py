"""Released ConvNeXt V2 checkpoints -> this package's key layout.

Our layout is mmpretrain's ``ConvNeXt(use_grn=True, layer_scale_init_value=0.)`` (see
:mod:`.convnextv2`), so three released layouts are renamed onto it:

==========================================  ===============================================
official dense (``{'model': sd}``)          ours (``ImageClassifier``)
==========================================  ===============================================
``downsample_layers.i.k.*``                 ``backbone.downsample_layers.i.k.*``
``stages.i.j.dwconv.*``                     ``backbone.stages.i.j.depthwise_conv.*``
``stages.i.j.norm.*``                       ``backbone.stages.i.j.norm.*``
``stages.i.j.pwconv{1,2}.*``                ``backbone.stages.i.j.pointwise_conv{1,2}.*``
``stages.i.j.grn.{gamma,beta}`` (1,1,1,C)   ``backbone.stages.i.j.grn.{gamma,beta}`` (C,)
``norm.*`` / ``head.*``                     ``backbone.norm3.*`` / ``head.fc.*``
==========================================  ===============================================

The official FCMAE pre-training checkpoints hold the MinkowskiEngine (ME) sparse encoder under
``encoder.``: ME convolutions store ``kernel`` (not ``weight``) and a (1, C) ``bias``; ME layer
norms and linears wrap an ``nn`` module one level down (``norm.ln.weight``,
``pwconv1.linear.weight``); the sparse GRN's gamma/beta are (1, C). ME lists the k*k kernel
offsets with the *first* spatial axis (our H) varying fastest, i.e. offset ``n = w * k + h``, so

- a strided conv kernel (k*k, Cin, Cout) becomes ``weight[o, i, h, w] = kernel[w*k + h, i, o]``;
- a depthwise kernel (k*k, C) becomes ``weight[c, 0, h, w] = kernel[w*k + h, c]``.

The stem (``downsample_layers.0``) is a dense ``nn.Conv2d`` + LayerNorm and keeps its names. The
dense decoder pieces go to the FCMAE neck: ``proj`` / ``mask_token`` / ``pred`` ->
``neck.proj`` / ``neck.mask_token`` / ``neck.pred`` and ``decoder.n`` (dense V2 blocks, named as in
the dense model) -> ``neck.decoder.n`` (mmpretrain ``ConvNeXtBlock`` names).

timm's ``convnextv2_*``: ``stem.{0,1}`` -> ``downsample_layers.0.{0,1}``,
``stages.i.downsample.{0,1}`` -> ``downsample_layers.i.{0,1}``, ``stages.i.blocks.j.conv_dw`` ->
``depthwise_conv``, ``.mlp.fc{1,2}`` (1x1 convs or linears) -> ``pointwise_conv{1,2}`` (linears),
``.mlp.grn.{weight,bias}`` -> ``grn.{gamma,beta}``, ``head.norm`` -> ``norm3``, ``head.fc`` ->
``head.fc``.

Every source key must have a rule: a key without one (V1 LayerScale ``gamma``, a timm
``norm_pre``, another stem type) raises ``ValueError`` naming it instead of being dropped.
"""
import math
import re
from typing import Callable, Dict, List, Tuple

import torch

__all__ = ['convert_official_convnextv2', 'convert_official_fcmae', 'convert_timm_convnextv2',
           'me_kernel_to_conv_weight', 'me_depthwise_kernel_to_conv_weight']

Rule = Tuple['re.Pattern', str, Callable[[torch.Tensor, str], torch.Tensor]]


def _same(v: torch.Tensor, key: str) -> torch.Tensor:
    return v


def _flat(v: torch.Tensor, key: str) -> torch.Tensor:
    """(1, ..., 1, C) -> (C,): GRN parameters, ME biases."""
    if any(s != 1 for s in v.shape[:-1]):
        raise ValueError(f'{key}: expected shape (1, ..., 1, C), got {tuple(v.shape)}')
    return v.reshape(-1)


def _linear(v: torch.Tensor, key: str) -> torch.Tensor:
    """A 1x1 conv weight (Cout, Cin, 1, 1) or a linear weight -> the linear weight (Cout, Cin)."""
    if v.dim() == 4 and v.shape[2:] == (1, 1):
        return v.reshape(v.shape[0], v.shape[1])
    if v.dim() != 2:
        raise ValueError(f'{key}: expected a linear or 1x1 conv weight, got {tuple(v.shape)}')
    return v


def _side(kernel_volume: int, key: str) -> int:
    k = math.isqrt(kernel_volume)
    if k * k != kernel_volume:
        raise ValueError(f'{key}: {kernel_volume} kernel offsets is not a square kernel')
    return k


def me_kernel_to_conv_weight(kernel: torch.Tensor, key: str = 'kernel') -> torch.Tensor:
    """ME convolution kernel (k*k, Cin, Cout) -> ``nn.Conv2d`` weight (Cout, Cin, k, k)."""
    if kernel.dim() != 3:
        raise ValueError(f'{key}: expected an ME kernel (k*k, Cin, Cout), '
                         f'got {tuple(kernel.shape)}')
    kv, cin, cout = kernel.shape
    k = _side(kv, key)
    # offset n = w * k + h: viewed as (w, h, Cin, Cout), then reordered to (Cout, Cin, h, w)
    return kernel.reshape(k, k, cin, cout).permute(3, 2, 1, 0).contiguous()


def me_depthwise_kernel_to_conv_weight(kernel: torch.Tensor, key: str = 'kernel') -> torch.Tensor:
    """ME depthwise kernel (k*k, C) -> depthwise ``nn.Conv2d`` weight (C, 1, k, k)."""
    if kernel.dim() != 2:
        raise ValueError(f'{key}: expected an ME depthwise kernel (k*k, C), '
                         f'got {tuple(kernel.shape)}')
    kv, c = kernel.shape
    k = _side(kv, key)
    return kernel.reshape(k, k, c).permute(2, 1, 0).unsqueeze(1).contiguous()


def _me_conv(v, key):
    return me_kernel_to_conv_weight(v, key)


def _me_depthwise(v, key):
    return me_depthwise_kernel_to_conv_weight(v, key)


def _rules(*rules) -> List[Rule]:
    return [(re.compile(pattern), target, fn) for pattern, target, fn in rules]


def _dense_block_rules(src: str, dst: str) -> List[Rule]:
    """Rules of one dense official block (``src`` captures the block prefix as group 1)."""
    return _rules(
        (src + r'\.dwconv\.(weight|bias)', dst + r'.depthwise_conv.\2', _same),
        (src + r'\.norm\.(weight|bias)', dst + r'.norm.\2', _same),
        (src + r'\.pwconv([12])\.weight', dst + r'.pointwise_conv\2.weight', _linear),
        (src + r'\.pwconv([12])\.bias', dst + r'.pointwise_conv\2.bias', _same),
        (src + r'\.grn\.(gamma|beta)', dst + r'.grn.\2', _flat),
    )


_OFFICIAL = _rules(
    (r'downsample_layers\.(\d+)\.([01])\.(weight|bias)', r'backbone.downsample_layers.\1.\2.\3',
     _same),
    (r'norm\.(weight|bias)', r'backbone.norm3.\1', _same),
    (r'head\.(weight|bias)', r'head.fc.\1', _same),
) + _dense_block_rules(r'(stages\.\d+\.\d+)', r'backbone.\1')

_FCMAE = _rules(
    # the stem is dense in the sparse encoder too
    (r'encoder\.downsample_layers\.0\.([01])\.(weight|bias)', r'backbone.downsample_layers.0.\1.\2',
     _same),
    (r'encoder\.downsample_layers\.([1-9]\d*)\.0\.ln\.(weight|bias)',
     r'backbone.downsample_layers.\1.0.\2', _same),
    (r'encoder\.downsample_layers\.([1-9]\d*)\.1\.kernel',
     r'backbone.downsample_layers.\1.1.weight', _me_conv),
    (r'encoder\.downsample_layers\.([1-9]\d*)\.1\.bias', r'backbone.downsample_layers.\1.1.bias',
     _flat),
    (r'encoder\.(stages\.\d+\.\d+)\.dwconv\.kernel', r'backbone.\1.depthwise_conv.weight',
     _me_depthwise),
    (r'encoder\.(stages\.\d+\.\d+)\.dwconv\.bias', r'backbone.\1.depthwise_conv.bias', _flat),
    (r'encoder\.(stages\.\d+\.\d+)\.norm\.ln\.(weight|bias)', r'backbone.\1.norm.\2', _same),
    (r'encoder\.(stages\.\d+\.\d+)\.pwconv([12])\.linear\.(weight|bias)',
     r'backbone.\1.pointwise_conv\2.\3', _same),
    (r'encoder\.(stages\.\d+\.\d+)\.grn\.(gamma|beta)', r'backbone.\1.grn.\2', _flat),
    (r'(proj|pred)\.(weight|bias)', r'neck.\1.\2', _same),
    (r'mask_token', r'neck.mask_token', _same),
) + _dense_block_rules(r'(decoder\.\d+)', r'neck.\1')

_TIMM = _rules(
    (r'stem\.([01])\.(weight|bias)', r'backbone.downsample_layers.0.\1.\2', _same),
    (r'stages\.([1-9]\d*)\.downsample\.([01])\.(weight|bias)',
     r'backbone.downsample_layers.\1.\2.\3', _same),
    (r'stages\.(\d+)\.blocks\.(\d+)\.conv_dw\.(weight|bias)',
     r'backbone.stages.\1.\2.depthwise_conv.\3', _same),
    (r'stages\.(\d+)\.blocks\.(\d+)\.norm\.(weight|bias)', r'backbone.stages.\1.\2.norm.\3', _same),
    (r'stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc([12])\.weight',
     r'backbone.stages.\1.\2.pointwise_conv\3.weight', _linear),
    (r'stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc([12])\.bias',
     r'backbone.stages.\1.\2.pointwise_conv\3.bias', _same),
    (r'stages\.(\d+)\.blocks\.(\d+)\.mlp\.grn\.weight', r'backbone.stages.\1.\2.grn.gamma', _same),
    (r'stages\.(\d+)\.blocks\.(\d+)\.mlp\.grn\.bias', r'backbone.stages.\1.\2.grn.beta', _same),
    (r'head\.norm\.(weight|bias)', r'backbone.norm3.\1', _same),
    (r'head\.fc\.(weight|bias)', r'head.fc.\1', _same),
)


def _apply(sd: Dict, rules: List[Rule], what: str) -> Dict[str, torch.Tensor]:
    out, unmatched = {}, []
    for key, value in sd.items():
        for pattern, target, fn in rules:
            match = pattern.fullmatch(key)
            if match:
                out[match.expand(target)] = fn(value, key)
                break
        else:
            unmatched.append(key)
    if unmatched:
        raise ValueError(
            f'{what}: {len(unmatched)} key(s) have no counterpart in this package\'s ConvNeXt V2 '
            f'(ConvNeXt V1 LayerScale, another stem or head?): {sorted(unmatched)[:8]}')
    return out


def convert_official_convnextv2(sd: Dict) -> Dict[str, torch.Tensor]:
    """Official dense ConvNeXt V2 weights (the ``'model'`` dict) -> ``ImageClassifier`` keys."""
    return _apply(sd, _OFFICIAL, 'official ConvNeXt V2 checkpoint')


def convert_official_fcmae(sd: Dict) -> Dict[str, torch.Tensor]:
    """Official FCMAE pre-training weights (ME encoder + dense decoder) -> FCMAE model keys
    (``backbone.*`` = the encoder, no ``norm3``; ``neck.*`` = proj, mask_token, decoder, pred)."""
    return _apply(sd, _FCMAE, 'official FCMAE checkpoint')


def convert_timm_convnextv2(sd: Dict) -> Dict[str, torch.Tensor]:
    """A timm ``convnextv2_*`` state dict -> ``ImageClassifier`` keys."""
    return _apply(sd, _TIMM, 'timm ConvNeXt V2 state dict')
