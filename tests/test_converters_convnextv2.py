"""ConvNeXt V2 checkpoint converters: timm, official dense, official FCMAE (MinkowskiEngine
kernels, remapped as the official ``remap_checkpoint_keys`` does); format detection beside the
VisionLLaMA formats.

The official layouts are written here from the official code's module names, independently of
``visionllama_mm.models.backbones.convnextv2_convert``: renaming timm's weights for the dense
checkpoints, and the documented MinkowskiEngine kernel layout (offset ``n = w * k + h``, the first
spatial axis fastest) with explicit loops for the FCMAE ones.
"""
import argparse
import re

import pytest
import timm
import torch

import visionllama_mm  # noqa: F401
from visionllama_mm.converters import (AlreadyConvertedError, convert_state_dict, detect_kind,
                                       family_modules)
from .conftest import run_python, run_tool

TOOL = 'tools/model_converters/convnextv2_official.py'
TINY = dict(depths=[1, 1, 2, 1], channels=[8, 16, 24, 32])
SIZES = {
    # timm's convnextv2_atto: 1x1-conv MLP (fc weights (Cout, Cin, 1, 1))
    'atto': ('atto', 320, 1000),
    # timm's generic class with a linear MLP, a tiny custom size
    'tiny-custom': (TINY, 32, 10),
}
ALL_FORMATS = ('deit-plain', 'deit-pyramid', 'mmpretrain-fork', 'convnextv2-official',
               'convnextv2-fcmae', 'timm-convnextv2')


def _timm_model(size):
    if size == 'atto':
        model = timm.create_model('convnextv2_atto', pretrained=False)
    else:
        from timm.models.convnext import ConvNeXt
        model = ConvNeXt(depths=TINY['depths'], dims=TINY['channels'], use_grn=True,
                         ls_init_value=None, num_classes=SIZES[size][2])
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # nothing left at its (partly zero, identity-GRN) init
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if '.grn.' in name:
                p.copy_(0.5 * noise)
            elif 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.2 * noise)
            else:
                p.copy_(0.1 * noise)
    return model.eval()


def _classifier(size):
    from mmpretrain.registry import MODELS
    arch, channels, num_classes = SIZES[size]
    return MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='ConvNeXtV2', arch=arch),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=channels))).eval()


def _load_and_compare(dst, size, ref):
    ckpt = torch.load(dst, weights_only=True)
    model = _classifier(size)
    missing, unexpected = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not missing and not unexpected
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(x, mode='tensor'), ref(x)
    diff = (ours - theirs).abs().max().item()
    print(f'{size}: max |logit diff| {diff:.3g} (logit scale {theirs.abs().max().item():.3g})')
    assert diff <= 1e-4, diff
    return ckpt


@pytest.mark.parametrize('size', list(SIZES))
def test_timm_parity_through_the_cli(python, tmp_path, size):
    ref = _timm_model(size)
    src, dst = tmp_path / 'timm.pth', tmp_path / 'ours.pth'
    torch.save(ref.state_dict(), src)
    out = run_tool([python, TOOL, str(src), str(dst)])
    assert 'detected: timm-convnextv2' in out and f'wrote: {dst}' in out
    ckpt = _load_and_compare(dst, size, ref)
    # the GRN parameters arrived randomised, reshaped to (4C,)
    assert ckpt['state_dict']['backbone.stages.0.0.grn.gamma'].abs().sum() > 0
    with pytest.raises(AlreadyConvertedError, match=r'converted from timm.pth \(format '
                                                    r'timm-convnextv2\) by this tool'):
        detect_kind(ckpt)


def _official_from_timm(sd):
    """timm ``convnextv2_*`` weights renamed to the official ``models/convnextv2.py`` layout."""
    block = {'conv_dw': 'dwconv', 'norm': 'norm', 'mlp.fc1': 'pwconv1', 'mlp.fc2': 'pwconv2'}
    out = {}
    for key, v in sd.items():
        if m := re.fullmatch(r'stem\.(\d)\.(\w+)', key):
            out[f'downsample_layers.0.{m[1]}.{m[2]}'] = v
        elif m := re.fullmatch(r'stages\.(\d)\.downsample\.(\d)\.(\w+)', key):
            out[f'downsample_layers.{m[1]}.{m[2]}.{m[3]}'] = v
        elif m := re.fullmatch(r'stages\.(\d)\.blocks\.(\d+)\.mlp\.grn\.(weight|bias)', key):
            name = 'gamma' if m[3] == 'weight' else 'beta'
            out[f'stages.{m[1]}.{m[2]}.grn.{name}'] = v.reshape(1, 1, 1, -1)
        elif m := re.fullmatch(r'stages\.(\d)\.blocks\.(\d+)\.(conv_dw|norm|mlp\.fc[12])\.(\w+)',
                               key):
            out[f'stages.{m[1]}.{m[2]}.{block[m[3]]}.{m[4]}'] = (
                v.flatten(1) if m[3].startswith('mlp') and v.dim() == 4 else v)  # nn.Linear
        elif m := re.fullmatch(r'head\.(norm|fc)\.(\w+)', key):
            out[f'{"norm" if m[1] == "norm" else "head"}.{m[2]}'] = v
        else:
            raise AssertionError(f'unexpected timm key {key}')
    return out


def test_official_dense_parity_through_the_cli(python, tmp_path):
    ref = _timm_model('atto')
    official = _official_from_timm(ref.state_dict())
    assert official['stages.3.1.grn.gamma'].shape == (1, 1, 1, 1280)
    assert official['stages.0.0.pwconv1.weight'].shape == (160, 40)
    assert official['downsample_layers.1.1.weight'].shape == (80, 40, 2, 2)
    src, dst = tmp_path / 'convnextv2_atto_1k_224_ema.pt', tmp_path / 'ours.pth'
    # main_finetune.py stores the argparse namespace beside the weights
    torch.save({'model': official, 'epoch': 599, 'args': argparse.Namespace(lr=2e-4)}, src)
    out = run_tool([python, TOOL, str(src), str(dst)])
    assert 'detected: convnextv2-official' in out
    _load_and_compare(dst, 'atto', ref)


def test_official_dense_with_leftover_keys_is_refused():
    official = _official_from_timm(_timm_model('tiny-custom').state_dict())
    official['stages.0.0.gamma'] = torch.ones(8)  # a V1 LayerScale has no counterpart in V2
    with pytest.raises(ValueError, match=r"no counterpart .*\['stages.0.0.gamma'\]"):
        convert_state_dict({'model': official})


# ---------------------------------------------------------------------------------------------
# FCMAE


def _fcmae_dense_weights():
    """Random weights under the FCMAE model's keys (``backbone.*`` without ``norm3``,
    ``neck.*``), the tiny encoder and the official 512-wide, 1-block decoder (32x32x3 pixels)."""
    from mmpretrain.models.backbones.convnext import ConvNeXtBlock

    from visionllama_mm.models.backbones import ConvNeXtV2
    encoder = ConvNeXtV2(arch=TINY).state_dict()
    decoder = ConvNeXtBlock(512, use_grn=True, layer_scale_init_value=0.).state_dict()
    shapes = {f'backbone.{k}': v.shape for k, v in encoder.items() if not k.startswith('norm3.')}
    shapes.update({'neck.proj.weight': (512, 32, 1, 1), 'neck.proj.bias': (512,),
                   'neck.mask_token': (1, 512, 1, 1)})
    shapes.update({f'neck.decoder.0.{k}': v.shape for k, v in decoder.items()})
    shapes.update({'neck.pred.weight': (3072, 512, 1, 1), 'neck.pred.bias': (3072,)})
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(s, generator=gen) for k, s in shapes.items()}


def _me_kernel(w):
    """Dense (Cout, Cin, k, k) -> MinkowskiConvolution kernel (k*k, Cin, Cout)."""
    cout, cin, k, _ = w.shape
    kernel = torch.empty(k * k, cin, cout)
    for h in range(k):
        for x in range(k):
            kernel[x * k + h] = w[:, :, h, x].t()
    return kernel


def _me_depthwise_kernel(w):
    """Dense depthwise (C, 1, k, k) -> MinkowskiDepthwiseConvolution kernel (k*k, C)."""
    c, _, k, _ = w.shape
    kernel = torch.empty(k * k, c)
    for h in range(k):
        for x in range(k):
            kernel[x * k + h] = w[:, 0, h, x]
    return kernel


def _official_fcmae(dense):
    """The official ``models/fcmae.py`` state dict holding ``dense``'s weights: ME encoder
    (``.kernel``, (1, C) conv biases and GRN, ``.ln`` / ``.linear`` wrappers), dense decoder."""
    block = {'depthwise_conv': 'dwconv', 'norm': 'norm', 'pointwise_conv1': 'pwconv1',
             'pointwise_conv2': 'pwconv2', 'grn': 'grn'}
    out = {}
    for key, v in dense.items():
        if m := re.fullmatch(r'backbone\.downsample_layers\.0\.(.*)', key):  # dense stem
            out[f'encoder.downsample_layers.0.{m[1]}'] = v
        elif m := re.fullmatch(r'backbone\.downsample_layers\.(\d)\.0\.(\w+)', key):
            out[f'encoder.downsample_layers.{m[1]}.0.ln.{m[2]}'] = v
        elif m := re.fullmatch(r'backbone\.downsample_layers\.(\d)\.1\.weight', key):
            out[f'encoder.downsample_layers.{m[1]}.1.kernel'] = _me_kernel(v)
        elif m := re.fullmatch(r'backbone\.downsample_layers\.(\d)\.1\.bias', key):
            out[f'encoder.downsample_layers.{m[1]}.1.bias'] = v.reshape(1, -1)
        elif m := re.fullmatch(r'backbone\.(stages\.\d\.\d+)\.(\w+)\.(\w+)', key):
            mod, param = block[m[2]], m[3]
            if mod == 'dwconv':
                name, v = (('kernel', _me_depthwise_kernel(v)) if param == 'weight' else
                           ('bias', v.reshape(1, -1)))
                out[f'encoder.{m[1]}.dwconv.{name}'] = v
            elif mod == 'grn':
                out[f'encoder.{m[1]}.grn.{param}'] = v.reshape(1, -1)
            else:
                wrapper = 'ln' if mod == 'norm' else 'linear'
                out[f'encoder.{m[1]}.{mod}.{wrapper}.{param}'] = v
        elif m := re.fullmatch(r'neck\.decoder\.(\d)\.(\w+)\.(\w+)', key):
            mod = block[m[2]]
            out[f'decoder.{m[1]}.{mod}.{m[3]}'] = v.reshape(1, 1, 1, -1) if mod == 'grn' else v
        elif m := re.fullmatch(r'neck\.(proj|pred|mask_token)(.*)', key):
            out[m[1] + m[2]] = v
        else:
            raise AssertionError(f'unexpected key {key}')
    return out


def test_fcmae_kernels_and_keys_through_the_cli(python, tmp_path):
    from visionllama_mm.models.backbones import ConvNeXtV2
    dense = _fcmae_dense_weights()
    official = _official_fcmae(dense)
    assert official['encoder.stages.0.0.dwconv.kernel'].shape == (49, 8)
    assert official['encoder.downsample_layers.2.1.kernel'].shape == (4, 16, 24)
    assert official['encoder.stages.3.0.grn.gamma'].shape == (1, 128)
    assert official['decoder.0.grn.gamma'].shape == (1, 1, 1, 2048)
    src, dst = tmp_path / 'convnextv2_atto_1k_224_fcmae.pt', tmp_path / 'ours.pth'
    torch.save({'model': official, 'epoch': 1599, 'args': argparse.Namespace(mask_ratio=0.6)}, src)
    out = run_tool([python, TOOL, str(src), str(dst)])
    assert 'detected: convnextv2-fcmae' in out
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert sorted(converted) == sorted(dense)  # exactly the FCMAE model's keys
    for key, value in dense.items():
        assert converted[key].shape == value.shape and torch.equal(converted[key], value), key

    backbone = ConvNeXtV2(arch=TINY)
    missing, unexpected = backbone.load_state_dict(
        {k[len('backbone.'):]: v for k, v in converted.items() if k.startswith('backbone.')},
        strict=False)
    assert sorted(missing) == ['norm3.bias', 'norm3.weight'] and not unexpected


def test_fcmae_kernel_offset_order():
    """One non-zero tap: ME offset n = w * k + h lands at row h, column w of the dense kernel."""
    from visionllama_mm.models.backbones.convnextv2_convert import (
        me_depthwise_kernel_to_conv_weight, me_kernel_to_conv_weight)
    kernel = torch.zeros(49, 2)
    kernel[1 * 7 + 5, 1] = 1.  # offset with w = 1, h = 5
    weight = me_depthwise_kernel_to_conv_weight(kernel)
    assert weight.shape == (2, 1, 7, 7) and weight[1, 0, 5, 1] == 1 and weight.sum() == 1
    kernel = torch.zeros(4, 3, 5)
    kernel[1, 2, 4] = 1.  # offset 1 = (h 1, w 0); input channel 2, output channel 4
    weight = me_kernel_to_conv_weight(kernel)
    assert weight.shape == (5, 3, 2, 2) and weight[4, 2, 1, 0] == 1 and weight.sum() == 1
    with pytest.raises(ValueError, match='not a square kernel'):
        me_kernel_to_conv_weight(torch.zeros(3, 2, 2))


# ---------------------------------------------------------------------------------------------
# detection


def _samples():
    """One checkpoint of every released format, as stored."""
    from .models.backbones.official_plain_reference import OfficialPlainVisionLLaMA
    from .models.backbones.official_pyramid_reference import OfficialPyramidVisionLLaMA
    with torch.device('meta'):
        plain = OfficialPlainVisionLLaMA(384, 12, 6).state_dict()
        pyramid = OfficialPyramidVisionLLaMA().state_dict()
    fork = {'backbone.pos_embed': torch.zeros(1, 5, 8), 'backbone.cls_token': torch.zeros(1, 1, 8),
            'backbone.patch_embed.projection.weight': torch.zeros(8, 3, 4, 4),
            'backbone.layers.0.ffn.w12.weight': torch.zeros(32, 8)}
    timm_sd = _timm_model('tiny-custom').state_dict()
    return {
        'deit-plain': {'model': plain, 'args': None},
        'deit-pyramid': {'model': pyramid},
        'mmpretrain-fork': {'state_dict': fork, 'meta': {}},
        'convnextv2-official': {'model': _official_from_timm(timm_sd)},
        'convnextv2-fcmae': {'model': _official_fcmae(_fcmae_dense_weights())},
        'timm-convnextv2': timm_sd,
    }


def _matching_formats(ckpt):
    """The formats whose family's ``detect`` takes ``ckpt`` (a family that calls it its own
    layout, or refuses it, takes nothing)."""
    matching = set()
    for module in family_modules():
        try:
            found = module.detect(ckpt)
        except ValueError:  # AlreadyConvertedError included
            continue
        if found:
            matching.add(found[0])
    return matching


def test_every_format_matches_exactly_one_detector():
    samples = _samples()
    # the formats of the other families are covered by their own tests
    formats = {f: m for m in family_modules() for f in m.FORMATS}
    assert sorted(samples) == sorted(ALL_FORMATS) == sorted(
        f for f, m in formats.items() if m.FAMILY in ('VisionLLaMA', 'ConvNeXt V2'))
    for expected, ckpt in samples.items():
        assert _matching_formats(ckpt) == {expected}
        assert detect_kind(ckpt)[0] == expected


def test_other_places_of_the_convnext_weights():
    timm_sd = _timm_model('tiny-custom').state_dict()
    official = _official_from_timm(timm_sd)
    # timm's train.py checkpoint; an official state dict saved bare
    assert detect_kind({'state_dict': timm_sd, 'arch': 'convnextv2_atto'})[0] == 'timm-convnextv2'
    assert detect_kind(official)[0] == 'convnextv2-official'


def test_own_and_mmpretrain_checkpoints_need_no_conversion(python, tmp_path):
    from visionllama_mm.models.backbones import ConvNeXtV2
    model = _classifier('tiny-custom')
    ckpt = tmp_path / 'epoch_1.pth'
    # tools/train.py's layout, also that of mmpretrain's released ConvNeXt V2 checkpoints
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 1}}, ckpt)
    with pytest.raises(AlreadyConvertedError,
                       match=r"no conversion needed: its state_dict has this package's .*ConvNeXt "
                             r'V2 key layout \(backbone.stages.0.0.grn.gamma of shape \(32,\)\)'):
        detect_kind(torch.load(ckpt, weights_only=True))
    with pytest.raises(AlreadyConvertedError, match=r'top-level dict .*\(stages.0.0.grn.gamma'):
        detect_kind(ConvNeXtV2(arch=TINY).state_dict())
    proc = run_python([python, TOOL, str(ckpt), str(tmp_path / 'out.pth')], merge=False)
    assert proc.returncode != 0, proc.stdout
    assert proc.stderr.startswith(f'error: {ckpt}: already a visionllama_mm checkpoint, no '
                                  'conversion needed'), proc.stderr
    assert not (tmp_path / 'out.pth').exists()


def test_visionllama_checkpoint_is_refused_by_the_convnext_tool(python, tmp_path):
    src = tmp_path / 'deit.pth'
    torch.save({'model': {'blocks.0.mlp.c_fc1.weight': torch.zeros(4, 2),
                          'blocks.0.attn.qkv.weight': torch.zeros(6, 2)}}, src)
    proc = run_python([python, TOOL, str(src), str(tmp_path / 'out.pth')], merge=False)
    assert proc.returncode != 0, proc.stdout
    assert ('a VisionLLaMA checkpoint (format deit-plain), not a ConvNeXt V2 one'
            in proc.stderr), proc.stderr
    assert not (tmp_path / 'out.pth').exists()


def test_convnext_v1_and_unknown_checkpoints_are_unrecognised():
    official = _official_from_timm(_timm_model('tiny-custom').state_dict())
    v1 = {k: v for k, v in official.items() if '.grn.' not in k}
    v1['stages.0.0.gamma'] = torch.ones(8)
    timm_v1 = timm.create_model('convnext_atto', pretrained=False).state_dict()
    for ckpt in ({'model': v1}, timm_v1, {'state_dict': {'conv1.weight': torch.zeros(1)}}):
        with pytest.raises(ValueError, match='unrecognised checkpoint') as info:
            detect_kind(ckpt)
        message = str(info.value)
        assert 'VisionLLaMA: ' in message and 'ConvNeXt V2: ' in message
        assert all(name in message for name in ALL_FORMATS), message
