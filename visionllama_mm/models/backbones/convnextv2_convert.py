"""ConvNeXt V2 checkpoints: the official and timm releases -> this package's keys, and back to
timm (``--to timm``).

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

``--to timm`` (:func:`from_ours`) inverts the timm mapping for an ``ImageClassifier`` whose backbone
is one of timm's ``convnextv2_*`` sizes (the MLP weights become 1x1 convs for atto / femto / pico /
nano, which timm builds with ``conv_mlp=True``), so that ``timm.create_model('convnextv2_<size>',
num_classes=<head width>)`` loads the file strictly. FCMAE pre-training checkpoints (no final norm,
a decoder neck) and dense-task backbones (per-stage norms) have no timm model and are refused.
"""
import math
import re
from typing import Callable, Dict, List, Optional, Tuple

import torch

from ...converters import AlreadyConvertedError

__all__ = ['FAMILY', 'FORMATS', 'EXPORTS', 'detect', 'to_ours', 'from_ours', 'TIMM_ARCHS',
           'convert_official_convnextv2', 'convert_official_fcmae', 'convert_timm_convnextv2',
           'export_timm_convnextv2', 'me_kernel_to_conv_weight',
           'me_depthwise_kernel_to_conv_weight']

FAMILY = 'ConvNeXt V2'
FORMATS = ('convnextv2-official', 'convnextv2-fcmae', 'timm-convnextv2')
EXPORTS = ('timm', )

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


def _apply(sd: Dict, rules: List[Rule], what: str,
           where: str = "this package's ConvNeXt V2 (ConvNeXt V1 LayerScale, another stem or "
           'head?)') -> Dict[str, torch.Tensor]:
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
            f'{what}: {len(unmatched)} key(s) have no counterpart in {where}: '
            f'{sorted(unmatched)[:8]}')
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


# ---------------------------------------------------------------------------------------------
# the family interface


# Each detector asks for keys only its format has: the official layouts' ``dwconv`` (ours and
# mmpretrain's say ``depthwise_conv``, timm's ``conv_dw``), ME's ``.kernel`` under ``encoder.`` for
# FCMAE, and a GRN parameter in every case, so that V1 checkpoints (same names, LayerScale
# ``gamma`` instead of GRN) are not taken for V2.
def _is_official(sd: Dict) -> bool:
    return ('downsample_layers.0.0.weight' in sd and 'stages.0.0.dwconv.weight' in sd
            and 'stages.0.0.grn.gamma' in sd)


def _is_fcmae(sd: Dict) -> bool:
    return ('encoder.downsample_layers.0.0.weight' in sd
            and 'encoder.stages.0.0.dwconv.kernel' in sd and 'encoder.stages.0.0.grn.gamma' in sd)


def _is_timm(sd: Dict) -> bool:
    return 'stem.0.weight' in sd and 'stages.0.blocks.0.mlp.grn.weight' in sd


# (format, where the weights sit in the file ('' = the top-level dict), detector). The official
# main_finetune.py / main_pretrain.py save {'model', 'optimizer', 'epoch', 'args', ...}; timm's
# hub weights are a bare state dict, its train.py writes {'state_dict', 'arch', ...}.
_PLACES = (('convnextv2-official', 'model', _is_official),
           ('convnextv2-official', '', _is_official),
           ('convnextv2-fcmae', 'model', _is_fcmae), ('convnextv2-fcmae', '', _is_fcmae),
           ('timm-convnextv2', '', _is_timm), ('timm-convnextv2', 'state_dict', _is_timm))

# a GRN gamma of our (= mmpretrain's) layout: 1-D, where the official dense layout (same name, no
# ``backbone.``) has (1, 1, 1, C)
_OWN_KEY = re.compile(r'(backbone\.)?stages\.\d+\.\d+\.grn\.gamma')


def _own_layout_key(sd: Dict) -> str:
    """The first ConvNeXt V2 GRN key of this package's layout in ``sd``, or ''."""
    return next((k for k in sorted(map(str, sd)) if _OWN_KEY.fullmatch(k)
                 and isinstance(sd[k], torch.Tensor) and sd[k].dim() == 1), '')


def detect(ckpt: Dict) -> Optional[Tuple[str, Dict]]:
    """(format, weights) of a ConvNeXt V2 release checkpoint, else ``None``.

    Raises:
        AlreadyConvertedError: our ConvNeXt V2 layout (1-D GRN parameters under
            ``stages.i.j.grn``), which mmpretrain's released ConvNeXt V2 checkpoints share: it
            loads as it is.
    """
    for fmt, field, test in _PLACES:
        weights = ckpt.get(field) if field else ckpt
        if isinstance(weights, dict) and test(weights):
            return fmt, weights
    for field in ('state_dict', None):
        weights = ckpt.get(field) if field else ckpt
        key = _own_layout_key(weights) if isinstance(weights, dict) else ''
        if key:
            raise AlreadyConvertedError(
                'already a visionllama_mm checkpoint, no conversion needed: its '
                f"{'state_dict' if field else 'top-level dict'} has this package's "
                f"(= mmpretrain's) ConvNeXt V2 key layout ({key} of shape "
                f"{tuple(weights[key].shape)}), as mmpretrain's released ConvNeXt V2 checkpoints "
                'do; load it directly')
    return None


def to_ours(weights: Dict, fmt: str) -> Dict[str, torch.Tensor]:
    """The weights of release format ``fmt`` -> this package's ``ImageClassifier`` keys
    (``FCMAE`` model keys for ``convnextv2-fcmae``)."""
    convert = {'convnextv2-official': convert_official_convnextv2,
               'convnextv2-fcmae': convert_official_fcmae,
               'timm-convnextv2': convert_timm_convnextv2}
    if fmt not in convert:
        raise ValueError(f'{FAMILY}: no release format {fmt!r}; known: {", ".join(FORMATS)}')
    return convert[fmt](weights)


def from_ours(state_dict: Dict, to: str) -> Dict[str, torch.Tensor]:
    """This package's ConvNeXt V2 ``ImageClassifier`` state dict -> timm's (``to='timm'``)."""
    if to not in EXPORTS:
        raise ValueError(f'{FAMILY} checkpoints export to {", ".join(EXPORTS)}, not {to!r}')
    return export_timm_convnextv2(state_dict)


#: timm's ``convnextv2_*`` models: name -> (depths, channels, 1x1-conv MLP)
TIMM_ARCHS = {
    'atto': ((2, 2, 6, 2), (40, 80, 160, 320), True),
    'femto': ((2, 2, 6, 2), (48, 96, 192, 384), True),
    'pico': ((2, 2, 6, 2), (64, 128, 256, 512), True),
    'nano': ((2, 2, 8, 2), (80, 160, 320, 640), True),
    'tiny': ((3, 3, 9, 3), (96, 192, 384, 768), False),
    'small': ((3, 3, 27, 3), (96, 192, 384, 768), False),
    'base': ((3, 3, 27, 3), (128, 256, 512, 1024), False),
    'large': ((3, 3, 27, 3), (192, 384, 768, 1536), False),
    'huge': ((3, 3, 27, 3), (352, 704, 1408, 2816), False),
}


def timm_arch(state_dict: Dict) -> str:
    """The timm ``convnextv2_*`` size of an ``ImageClassifier`` state dict (``backbone.*``)."""
    channels = tuple(state_dict[f'backbone.downsample_layers.{i}.{0 if i == 0 else 1}.weight']
                     .shape[0] for i in range(4)
                     if f'backbone.downsample_layers.{i}.{0 if i == 0 else 1}.weight'
                     in state_dict)
    depths = tuple(len({k.split('.')[3] for k in state_dict
                        if k.startswith(f'backbone.stages.{i}.')}) for i in range(4))
    for name, (timm_depths, timm_channels, _) in TIMM_ARCHS.items():
        if (depths, channels) == (timm_depths, timm_channels):
            return name
    raise ValueError(
        f'--to timm: no timm convnextv2_* model has depths {list(depths)} and channels '
        f'{list(channels)}; timm has ' + ', '.join(
            f'{name} {list(d)}/{list(c)}' for name, (d, c, _) in TIMM_ARCHS.items()))


_TO_TIMM = _rules(
    (r'backbone\.downsample_layers\.0\.([01])\.(weight|bias)', r'stem.\1.\2', _same),
    (r'backbone\.downsample_layers\.([1-9]\d*)\.([01])\.(weight|bias)',
     r'stages.\1.downsample.\2.\3', _same),
    (r'backbone\.stages\.(\d+)\.(\d+)\.depthwise_conv\.(weight|bias)',
     r'stages.\1.blocks.\2.conv_dw.\3', _same),
    (r'backbone\.stages\.(\d+)\.(\d+)\.norm\.(weight|bias)', r'stages.\1.blocks.\2.norm.\3', _same),
    (r'backbone\.stages\.(\d+)\.(\d+)\.pointwise_conv([12])\.(weight|bias)',
     r'stages.\1.blocks.\2.mlp.fc\3.\4', _same),
    (r'backbone\.stages\.(\d+)\.(\d+)\.grn\.gamma', r'stages.\1.blocks.\2.mlp.grn.weight', _same),
    (r'backbone\.stages\.(\d+)\.(\d+)\.grn\.beta', r'stages.\1.blocks.\2.mlp.grn.bias', _same),
    (r'backbone\.norm3\.(weight|bias)', r'head.norm.\1', _same),
    (r'head\.fc\.(weight|bias)', r'head.fc.\1', _same),
)


def export_timm_convnextv2(state_dict: Dict) -> Dict[str, torch.Tensor]:
    """Our ConvNeXt V2 ``ImageClassifier`` keys -> the state dict of timm's
    ``convnextv2_<size>`` (:func:`timm_arch`), MLP weights as 1x1 convs where timm uses them.

    Raises:
        ValueError: an FCMAE pre-training checkpoint (``neck.*``), a backbone without the final
            norm (``norm3``) or with per-stage norms, a size timm does not have, or a key
            without a timm counterpart.
    """
    neck = sorted(k for k in state_dict if k.startswith('neck.'))
    if neck or 'backbone.norm3.weight' not in state_dict:
        raise ValueError(
            '--to timm: an FCMAE pre-training checkpoint (' + (f'{neck[0]}, ' if neck else '')
            + 'no backbone.norm3) has no timm model: timm builds the ConvNeXt V2 classifier only. '
            'Fine-tune it into an ImageClassifier (configs/convnextv2/) and export that')
    conv_mlp = TIMM_ARCHS[timm_arch(state_dict)][2]
    out = _apply(state_dict, _TO_TIMM, '--to timm: this ConvNeXt V2 checkpoint',
                 "timm's ConvNeXt V2 classifier (a dense-task backbone's per-stage norms, a "
                 'segmentation or detection head, a head other than one linear layer?)')
    if conv_mlp:
        out = {k: v[:, :, None, None] if re.fullmatch(r'.*\.mlp\.fc[12]\.weight', k) else v
               for k, v in out.items()}
    return out
