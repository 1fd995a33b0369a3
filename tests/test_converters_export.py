"""Exports of this package's checkpoints (``--to``): ConvNeXt V2 -> timm, VisionLLaMA -> the
official DeiT layout. Each exported file is loaded strictly by the peer (timm's model; the
official-layout reference models of ``tests/models/backbones/``) and gives our model's outputs;
converting it back gives our state dict exactly. Tiny models with random weights."""
import argparse

import pytest
import timm
import torch
from mmpretrain.registry import MODELS
from safetensors.torch import load_file

import visionllama_mm  # noqa: F401
from visionllama_mm.converters import export_file, run_cli
from visionllama_mm.models.backbones import convnextv2_convert, vision_llama_convert
from .conftest import run_tool
from .models.backbones.official_plain_reference import OfficialPlainVisionLLaMA
from .models.backbones.official_pyramid_reference import OfficialPyramidVisionLLaMA

TOOL = 'tools/model_converters/convnextv2_official.py'


def _randomize(model, seed=0):
    """Random weights everywhere (norms near 1, LayerScale / GRN away from their identity init),
    so that a swapped or dropped tensor shows in the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if 'norm' in name.split('.')[-2] or '.ln' in name:
                p.copy_(1 + 0.1 * noise if name.endswith('weight') else 0.1 * noise)
            elif name.endswith(('ls1.weight', 'ls2.weight')):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif '.grn.' in name:
                p.copy_(0.5 * noise)
            else:
                p.copy_(0.05 * noise)
    return model.eval()


def _save_train_checkpoint(model, path):
    """What tools/train.py saves: the model's state dict beside mmengine's meta."""
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 3, 'iter': 30}}, path)


def _assert_round_trip(module, ours, exported, fmt):
    back = module.to_ours(exported, fmt)
    assert sorted(back) == sorted(ours)
    assert all(torch.equal(back[k], ours[k]) for k in ours)


def _max_diff(a, b):
    return (a - b).abs().max().item()


# ---------------------------------------------------------------------------------------------
# ConvNeXt V2 -> timm


def _convnext(arch, num_classes):
    """Our ConvNeXt V2 classifier of timm's size ``arch`` (mmpretrain's zoo has no 'small')."""
    depths, channels, _ = convnextv2_convert.TIMM_ARCHS[arch]
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='ConvNeXtV2', arch=dict(depths=list(depths), channels=list(channels))),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=channels[-1])))


def test_convnextv2_atto_to_timm_through_the_cli(python, tmp_path):
    """A train.py checkpoint of ConvNeXt V2-A -> ``--to timm`` (DST without an extension: a
    .safetensors file) -> timm's convnextv2_atto loads it strictly, same logits."""
    ours = _randomize(_convnext('atto', 10))
    src = tmp_path / 'epoch_3.pth'
    _save_train_checkpoint(ours, src)
    out = run_tool([python, TOOL, str(src), str(tmp_path / 'convnextv2_atto'), '--to', 'timm'])
    dst = tmp_path / 'convnextv2_atto.safetensors'
    assert f'exported: ConvNeXt V2 -> timm\nwrote: {dst}' in out, out
    exported = load_file(str(dst))
    ref = timm.create_model('convnextv2_atto', pretrained=False, num_classes=10).eval()
    missing, unexpected = ref.load_state_dict(exported, strict=True)
    assert not missing and not unexpected
    assert exported['stages.0.blocks.0.mlp.fc1.weight'].shape == (160, 40, 1, 1)  # conv MLP
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = _max_diff(ours(x, mode='tensor'), ref(x))
    print(f'ConvNeXt V2-A -> timm: max |logit diff| {diff:.3g}')
    assert diff <= 1e-4, diff
    _assert_round_trip(convnextv2_convert, ours.state_dict(), exported, 'timm-convnextv2')


@pytest.mark.parametrize('arch', list(convnextv2_convert.TIMM_ARCHS))
def test_convnextv2_every_timm_size_exports_timms_keys_and_shapes(arch):
    """Every timm convnextv2_* size: the export has exactly timm's keys and shapes (linear MLP
    weights from tiny up, 1x1 convs below); no weights are made (meta device)."""
    with torch.device('meta'):
        ours = _convnext(arch, 1000).state_dict()
        timm_sd = timm.create_model(f'convnextv2_{arch}', pretrained=False).state_dict()
    exported = convnextv2_convert.from_ours(ours, 'timm')
    assert {k: v.shape for k, v in exported.items()} == {k: v.shape for k, v in timm_sd.items()}


def test_convnextv2_exports_that_timm_cannot_load_are_refused(tmp_path):
    from visionllama_mm.models.backbones import ConvNeXtV2
    tiny = dict(depths=[1, 1, 2, 1], channels=[8, 16, 24, 32])
    custom = {f'backbone.{k}': v for k, v in ConvNeXtV2(arch=tiny).state_dict().items()}
    with pytest.raises(ValueError, match=r'^--to timm: no timm convnextv2_\* model has depths '
                                         r'\[1, 1, 2, 1\] and channels \[8, 16, 24, 32\]; timm '
                                         r'has atto \[2, 2, 6, 2\]/\[40, 80, 160, 320\], '):
        convnextv2_convert.from_ours(custom, 'timm')
    # a dense-task backbone (UperNet / Mask R-CNN: a norm after every stage)
    with torch.device('meta'):
        atto = _convnext('atto', 10).state_dict()
    dense = dict(atto, **{'backbone.norm0.weight': atto['backbone.norm3.weight'],
                          'decode_head.conv_seg.weight': atto['head.fc.weight']})
    with pytest.raises(ValueError, match=r"^--to timm: this ConvNeXt V2 checkpoint: 2 key\(s\) "
                                         r"have no counterpart in timm's ConvNeXt V2 classifier "
                                         r"\(a dense-task backbone's per-stage norms, .*\): "
                                         r"\['backbone.norm0.weight', "
                                         r"'decode_head.conv_seg.weight'\]"):
        convnextv2_convert.from_ours(dense, 'timm')
    # an FCMAE pre-training checkpoint: the encoder without norm3, a decoder neck
    fcmae = {k: v for k, v in custom.items() if not k.startswith('backbone.norm3')}
    fcmae['neck.mask_token'] = torch.zeros(1, 512, 1, 1)
    with pytest.raises(ValueError, match=r'^--to timm: an FCMAE pre-training checkpoint '
                                         r'\(neck.mask_token, no backbone.norm3\) has no timm '
                                         r'model: .* Fine-tune it into an ImageClassifier'):
        convnextv2_convert.from_ours(fcmae, 'timm')
    # a released timm checkpoint given to --to: convert it first
    src = tmp_path / 'timm.pth'
    torch.save(timm.create_model('convnextv2_atto').state_dict(), src)
    with pytest.raises(SystemExit, match=r'error: .*timm.pth: a released ConvNeXt V2 checkpoint '
                                         r'\(format timm-convnextv2\), not one of this '
                                         r"package's: --to exports .* without --to first"):
        run_cli(convnextv2_convert, argv=[str(src), str(tmp_path / 'o.safetensors'), '--to',
                                          'timm'])
    assert not (tmp_path / 'o.safetensors').exists()
    # a checkpoint of this package's other family
    src = tmp_path / 'plain.pth'
    _save_train_checkpoint(_plain(True), src)
    with pytest.raises(ValueError, match=r"^a VisionLLaMA checkpoint of this package, not a "
                                         r"ConvNeXt V2 one; this tool exports ConvNeXt V2 "
                                         r"checkpoints only$"):
        export_file(str(src), str(tmp_path / 'o.safetensors'), convnextv2_convert, 'timm')
    assert not (tmp_path / 'o.safetensors').exists()


def test_to_must_be_one_of_the_family_exports(tmp_path, capsys):
    src = tmp_path / 'ck.pth'
    torch.save({'state_dict': {}}, src)
    with pytest.raises(SystemExit):
        run_cli(convnextv2_convert, argv=[str(src), str(tmp_path / 'o'), '--to', 'open_clip'])
    assert "argument --to: invalid choice: 'open_clip' (choose from 'timm')" in (
        capsys.readouterr().err)


# ---------------------------------------------------------------------------------------------
# VisionLLaMA -> official


def _plain(use_cls_token):
    extra = (dict(out_type='cls_token', with_cls_token=True) if use_cls_token else
             dict(out_type='avg_featmap', with_cls_token=False, final_norm=False))
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='VisionLLaMA', img_size=64, patch_size=16, cls_token_pos='official',
                      layer_scale_init_value=1e-4, **extra,
                      arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                feedforward_channels=256)),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=32)))


@pytest.mark.parametrize('use_cls_token', [True, False])
def test_vision_llama_plain_to_official(tmp_path, use_cls_token):
    """Our plain classifier (class token, or GAP) -> ``--to official`` -> ``{'model': ...}`` that
    the official-layout model loads strictly; same logits; converting back is exact."""
    ours = _randomize(_plain(use_cls_token))
    src = tmp_path / 'epoch_3.pth'
    _save_train_checkpoint(ours, src)
    dst = export_file(str(src), str(tmp_path / 'official'), vision_llama_convert, 'official')
    assert dst == str(tmp_path / 'official.pth')
    exported = torch.load(dst, weights_only=True)['model']
    ref = OfficialPlainVisionLLaMA(32, 2, 2, num_classes=10, use_cls_token=use_cls_token,
                                   img_size=64).eval()
    missing, unexpected = ref.load_state_dict(exported, strict=True)
    assert not missing and not unexpected
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = _max_diff(ours(x, mode='tensor'), ref(x))
    print(f'plain (cls token {use_cls_token}) -> official: max |logit diff| {diff:.3g}')
    assert diff <= 1e-4, diff
    _assert_round_trip(vision_llama_convert, ours.state_dict(), exported, 'deit-plain')


def test_vision_llama_pyramid_to_official(tmp_path):
    ours = _randomize(MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='PyramidVisionLLaMA', out_indices=(3, ), out_type='avg_featmap',
                      arch={'embed_dims': [16, 32, 32, 64], 'depths': [2, 2, 2, 2],
                            'num_heads': [1, 2, 2, 4], 'feedforward_channels': [256] * 4}),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=64))))
    src = tmp_path / 'epoch_3.pth'
    _save_train_checkpoint(ours, src)
    dst = export_file(str(src), str(tmp_path / 'pllama.pth'), vision_llama_convert, 'official')
    exported = torch.load(dst, weights_only=True)['model']
    ref = OfficialPyramidVisionLLaMA(dims=(16, 32, 32, 64), depths=(2, 2, 2, 2),
                                     heads=(1, 2, 2, 4), num_classes=10).eval()
    missing, unexpected = ref.load_state_dict(exported, strict=True)
    assert not missing and not unexpected
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = _max_diff(ours(x, mode='tensor'), ref(x))
    print(f'pyramid -> official: max |logit diff| {diff:.3g}')
    assert diff <= 1e-4, diff
    _assert_round_trip(vision_llama_convert, ours.state_dict(), exported, 'deit-pyramid')


def test_vision_llama_exports_the_official_code_cannot_load_are_refused(tmp_path):
    ours = _plain(True).state_dict()
    # a class token with GAP + ln2 and ln1: the official plain model has one final norm
    both = dict(ours, **{'backbone.ln2.weight': torch.ones(32),
                         'backbone.ln2.bias': torch.ones(32)})
    with pytest.raises(KeyError, match=r"one final norm, ours ln1 \(backbone.ln1\); this "
                                       r"checkpoint has \['ln1', 'ln2'\]"):
        vision_llama_convert.from_ours(both, 'official')
    # an MAE pre-training checkpoint (a decoder neck)
    with pytest.raises(KeyError, match=r"keys outside the backbone and the linear head "
                                       r"\(\['neck.mask_token'\]\)"):
        vision_llama_convert.from_ours(dict(ours, **{'neck.mask_token': torch.zeros(1)}),
                                       'official')
    with pytest.raises(ValueError, match=r'--to official writes a torch file'):
        vision_llama_convert.write_export({}, 'official', str(tmp_path / 'x.safetensors'))
    # a released DeiT checkpoint given to --to: convert it first
    src = tmp_path / 'deit.pth'
    ref = OfficialPlainVisionLLaMA(32, 2, 2, num_classes=10, img_size=64)
    torch.save({'model': ref.state_dict(), 'args': argparse.Namespace(lr=1e-3)}, src)
    with pytest.raises(ValueError, match=r'a released VisionLLaMA checkpoint \(format '
                                         r'deit-plain\), not one of this package'):
        export_file(str(src), str(tmp_path / 'o.pth'), vision_llama_convert, 'official')


# ---------------------------------------------------------------------------------------------
# the runner


def test_conversion_to_safetensors_keeps_meta_in_the_header(tmp_path):
    """DST ending in .safetensors: the same tensors as the .pth output, meta in the header; the
    written file is refused as already converted."""
    from safetensors import safe_open

    from visionllama_mm.converters import AlreadyConvertedError, convert_file, detect_any
    src = tmp_path / 'timm.pth'
    torch.save(timm.create_model('convnextv2_atto').state_dict(), src)
    module, fmt, _ = detect_any(torch.load(src, weights_only=True))
    assert module is convnextv2_convert and fmt == 'timm-convnextv2'
    assert convert_file(str(src), str(tmp_path / 'a.pth'), 'ConvNeXt V2') == 'timm-convnextv2'
    assert convert_file(str(src), str(tmp_path / 'a.safetensors'), convnextv2_convert) == fmt
    pth = torch.load(tmp_path / 'a.pth', weights_only=True)
    st = load_file(str(tmp_path / 'a.safetensors'))
    assert sorted(st) == sorted(pth['state_dict'])
    assert all(torch.equal(st[k], v) for k, v in pth['state_dict'].items())
    with safe_open(str(tmp_path / 'a.safetensors'), 'pt') as f:
        assert f.metadata() == {'converted_from': 'timm.pth', 'source_format': fmt}
    with pytest.raises(AlreadyConvertedError, match=r"ConvNeXt V2 key layout \(backbone"):
        convert_file(str(tmp_path / 'a.safetensors'), str(tmp_path / 'b.pth'), convnextv2_convert)
    assert not (tmp_path / 'b.pth').exists()
