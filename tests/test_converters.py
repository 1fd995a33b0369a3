"""Released-checkpoint converters: format detection, strict loading, parity with the reference."""
import argparse

import pytest
import torch
from mmengine.config import Config

import visionllama_mm  # noqa: F401
from visionllama_mm.analysis import build_model_from_cfg
from visionllama_mm.converters import convert_state_dict, detect_kind

from .conftest import run_tool
from .models.backbones.official_plain_reference import OfficialPlainVisionLLaMA

PLAIN = 'configs/visionllama/visionllama-plain-{}-p16_8xb256-800e_in1k.py'
ARCH = {'small': (384, 12, 6), 'base': (768, 12, 12), 'large': (1024, 24, 16)}


def _plain_classifier(repo, arch, init=True, **backbone):
    cfg = Config.fromfile(f'{repo}/{PLAIN.format(arch)}')
    cfg.model.backbone.update(backbone)
    if init:
        return build_model_from_cfg(cfg)
    from mmpretrain.registry import MODELS
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('use_cls_token', [True, False])
def test_plain_small_parity_through_the_cli(repo, python, tmp_path, use_cls_token):
    torch.manual_seed(0)
    ref = OfficialPlainVisionLLaMA(*ARCH['small'], use_cls_token=use_cls_token).randomize().eval()
    src, dst = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    # DeiT's checkpoints store the argparse namespace beside the weights
    torch.save({'model': ref.state_dict(), 'epoch': 799, 'args': argparse.Namespace(lr=4e-3)}, src)
    out = run_tool([python, 'tools/model_converters/vision_llama_official.py', str(src), str(dst)])
    assert 'detected: deit-plain' in out

    extra = {} if use_cls_token else dict(with_cls_token=False, out_type='avg_featmap',
                                          final_norm=False)
    model = _plain_classifier(repo, 'small', **extra).eval()
    ckpt = torch.load(dst, weights_only=True)
    missing, unexpected = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not missing and not unexpected
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        diff = (model(x, mode='tensor') - ref(x)).abs().max().item()
    assert diff <= 1e-4, diff


@pytest.mark.parametrize('arch', ['base', 'large'])
def test_plain_base_large_keys_and_shapes(repo, arch):
    with torch.device('meta'):
        ref = OfficialPlainVisionLLaMA(*ARCH[arch])
        ours = _plain_classifier(repo, arch, init=False)
    kind, converted = convert_state_dict({'model': ref.state_dict()})
    assert kind == 'deit-plain'
    expected = {k: v.shape for k, v in ours.state_dict().items()}
    assert {k: v.shape for k, v in converted.items()} == expected


def test_unknown_checkpoint_is_refused_clearly(python, tmp_path):
    src = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(1)}}, src)
    with pytest.raises(ValueError, match="unrecognised checkpoint.*conv1.weight"):
        detect_kind(torch.load(src, weights_only=True))
    proc = __import__('subprocess').run(
        [python, 'tools/model_converters/vision_llama_official.py', str(src), str(tmp_path / 'o')],
        capture_output=True, text=True)
    assert proc.returncode != 0 and 'unrecognised checkpoint' in proc.stderr


def test_converter_refuses_pickled_code(tmp_path):
    from visionllama_mm.converters import load_source

    class Evil:

        def __reduce__(self):
            return (print, ('side effect',))

    torch.save({'model': {}, 'x': Evil()}, tmp_path / 'evil.pth')
    with pytest.raises(RuntimeError, match='weights_only=True'):
        load_source(str(tmp_path / 'evil.pth'))
