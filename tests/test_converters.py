"""Released-checkpoint converters: format detection, strict loading, parity with the reference."""
import argparse

import pytest
import torch
from mmengine.config import Config

import visionllama_mm  # noqa: F401
from visionllama_mm.converters import AlreadyConvertedError, convert_state_dict, detect_kind
from visionllama_mm.models.backbones.vision_llama_convert import _is_deit_plain
from visionllama_mm.models.builder import build_model_from_cfg
from .conftest import run_python, run_tool
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
    proc = run_python(
        [python, 'tools/model_converters/vision_llama_official.py', str(src), str(tmp_path / 'o')],
        merge=False)
    assert proc.returncode != 0 and 'unrecognised checkpoint' in proc.stderr, proc.stderr


def test_converter_refuses_pickled_code(tmp_path):
    from visionllama_mm.converters import load_source

    class Evil:

        def __reduce__(self):
            return (print, ('side effect',))

    torch.save({'model': {}, 'x': Evil()}, tmp_path / 'evil.pth')
    with pytest.raises(RuntimeError, match='weights_only=True'):
        load_source(str(tmp_path / 'evil.pth'))


def _fork_like(**extra):
    """The keys that tell the mmpretrain fork's checkpoints apart: its frozen ``pos_embed``."""
    sd = {'backbone.pos_embed': torch.zeros(1, 5, 8), 'backbone.cls_token': torch.zeros(1, 1, 8),
          'backbone.patch_embed.projection.weight': torch.zeros(8, 3, 4, 4),
          'backbone.layers.0.ffn.w12.weight': torch.zeros(32, 8)}
    sd.update(extra)
    return sd


def test_fork_is_detected_by_its_frozen_pos_embed():
    kind, weights = detect_kind({'state_dict': _fork_like(), 'meta': {'epoch': 800}})
    assert kind == 'mmpretrain-fork' and 'backbone.pos_embed' in weights
    # the same keys without the frozen pos_embed are our own layout, not the fork's
    ours = {k: v for k, v in _fork_like().items() if k != 'backbone.pos_embed'}
    with pytest.raises(AlreadyConvertedError,
                       match=r"already a visionllama_mm checkpoint, no conversion needed: its "
                             r"state_dict has this package's key layout "
                             r"\(backbone.layers.0.ffn.w12.weight\)"):
        detect_kind({'state_dict': ours, 'meta': {'epoch': 1}})


def test_converted_checkpoint_is_recognised_as_ours(python, tmp_path):
    src, dst = tmp_path / 'fork.pth', tmp_path / 'ours.pth'
    torch.save({'state_dict': _fork_like(), 'meta': {}}, src)
    out = run_tool([python, 'tools/model_converters/vision_llama_official.py', str(src), str(dst)],
                   fresh=True)  # a new interpreter, as from a shell
    assert 'detected: mmpretrain-fork' in out
    with pytest.raises(AlreadyConvertedError,
                       match=r'no conversion needed: converted from fork.pth \(format '
                             r'mmpretrain-fork\) by this tool'):
        detect_kind(torch.load(dst, weights_only=True))


def test_own_pyramid_and_bare_backbone_state_dicts_are_ours():
    from visionllama_mm.models.backbones import PyramidVisionLLaMA, VisionLLaMA
    with torch.device('meta'):
        pyramid = PyramidVisionLLaMA(arch='small').state_dict()
        plain = VisionLLaMA(arch='small').state_dict()
    with pytest.raises(AlreadyConvertedError, match=r'\(backbone.stages.0.0.ffn.w12.weight\)'):
        detect_kind({'state_dict': {f'backbone.{k}': v for k, v in pyramid.items()}})
    with pytest.raises(AlreadyConvertedError, match=r'top-level dict .*\(layers.0.ffn.w12.weight\)'):
        detect_kind(plain)


def test_train_py_checkpoint_is_not_converted(python, tmp_path, digits_root):
    """A real ``tools/train.py`` checkpoint (one iteration of the quickstart) given to the converter
    is named as ours; nothing is written."""
    work = tmp_path / 'work'
    run_tool([python, 'tools/train.py', 'configs/quickstart/visionllama-tiny-p4_1xb64-20e_digits.py',
              '--work-dir', str(work), '--no-validate', '--cfg-options',
              f'train_dataloader.dataset.data_root={digits_root}', 'train_dataloader.num_workers=0',
              'train_dataloader.persistent_workers=False', 'train_dataloader.dataset.indices=64',
              'train_cfg.max_epochs=1'])
    ckpt = work / 'epoch_1.pth'
    proc = run_python(
        [python, 'tools/model_converters/vision_llama_official.py', str(ckpt),
         str(tmp_path / 'out.pth')], merge=False)
    assert proc.returncode != 0, proc.stdout
    assert ('already a visionllama_mm checkpoint, no conversion needed: its state_dict has this '
            "package's key layout (backbone.layers.0.ffn.w12.weight)") in proc.stderr, proc.stderr
    assert not (tmp_path / 'out.pth').exists()


def test_each_family_tool_refuses_the_other_familys_checkpoint(tmp_path):
    """vision_llama_official.py names a ConvNeXt V2 checkpoint as such and writes nothing."""
    import sys

    import timm
    src = tmp_path / 'convnextv2_atto.pth'
    torch.save(timm.create_model('convnextv2_atto').state_dict(), src)
    dst = tmp_path / 'out.pth'
    proc = run_python([sys.executable, 'tools/model_converters/vision_llama_official.py',
                       str(src), str(dst)])
    assert proc.returncode != 0
    assert 'a ConvNeXt V2 checkpoint (format timm-convnextv2), not a VisionLLaMA one' in proc.stdout
    assert not dst.exists()


def test_dit_llama_checkpoint_is_sent_to_its_own_converter(tmp_path):
    """An official DiT-LLaMA train.py checkpoint (its SwiGLU and qkv keys are deit-plain's) and a
    bare DiT state dict are refused naming dit_llama_official.py; nothing is written."""
    import sys

    from .models.diffusion.official_dit_reference import OfficialDiTLLaMA
    sd = OfficialDiTLLaMA().state_dict()
    assert _is_deit_plain(sd)  # what the check before the format detectors is for
    src, dst = tmp_path / '0400000.pt', tmp_path / 'out.pth'
    torch.save({'model': sd, 'ema': sd, 'args': argparse.Namespace(num_classes=10)}, src)
    proc = run_python([sys.executable, 'tools/model_converters/vision_llama_official.py',
                       str(src), str(dst)])
    assert proc.returncode != 0 and not dst.exists()
    assert (f"error: {src}: a DiT-LLaMA checkpoint (its 'ema' weights have t_embedder.mlp.0.weight, "
            'blocks.0.adaLN_modulation.1.weight): an image-generation denoiser, not a VisionLLaMA, '
            'ConvNeXt V2 or ViTamin backbone; convert it with '
            'tools/model_converters/dit_llama_official.py') in proc.stdout, proc.stdout
    # the original DiT (GELU MLP), released as a bare state dict
    dit = {k.replace('mlp.c_fc1', 'mlp.fc1').replace('mlp.c_proj', 'mlp.fc2'): v
           for k, v in sd.items() if 'mlp.c_fc2' not in k}
    with pytest.raises(ValueError, match=r"^a DiT checkpoint \(its top-level dict has .*"
                                         r"dit_llama_official\.py$"):
        detect_kind(dit)
