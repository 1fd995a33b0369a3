"""``init_cfg=dict(type='Pretrained', ...)`` through ``PretrainedInitMixin`` (every family), the
``load_strict=False`` floor of ``load_from``, and checkpoint URLs that cannot be downloaded."""
import io
import logging
import os
import re
import sys

import pytest
import torch
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS

import visionllama_mm  # noqa: F401  (registries and shims)
from visionllama_mm.engine.checks import load_state_dict_checked
from visionllama_mm.engine.pretrained import (MIN_LOADED, checkpoint_cache_path,
                                              load_checkpoint_source, partial_pretrained)
from visionllama_mm.models.backbones import ConvNeXtV2, VisionLLaMA
from ..conftest import REPO, run_python

TINY = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
URL = 'http://127.0.0.1:9/x.pth'  # the discard port: refused at once, no network needed

# one tiny module of each family that takes an init_cfg
FAMILIES = {
    'VisionLLaMA': dict(type='VisionLLaMA', arch=TINY, img_size=32, patch_size=4),
    'PyramidVisionLLaMA': dict(type='PyramidVisionLLaMA', img_size=32, arch=dict(
        embed_dims=[16, 32, 32, 32], depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 2],
        ffn_dims=[32, 64, 64, 64])),
    'ConvNeXtV2': dict(type='ConvNeXtV2', arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 24, 32])),
    'ViTamin': dict(type='ViTamin', img_size=32, arch=dict(
        stem_channels=8, channels=(8, 16), depths=(1, 1), embed_dims=32, num_layers=1,
        num_heads=2)),
    'LLaMADecoder': dict(type='LLaMADecoder', vocab_size=64, arch=dict(
        embed_dims=32, hidden_dims=64, num_layers=1, num_heads=2)),
    'DiTLLaMA': dict(type='DiTLLaMA', arch=dict(embed_dims=32, depth=1, num_heads=2),
                     patch_size=2, in_channels=4, input_size=8, num_classes=10),
    'CLIPTextTransformer': dict(type='CLIPTextTransformer', embed_dims=24, width=32, num_layers=1,
                                num_heads=2, context_length=16),
    'VQGANTokenizer': dict(type='VQGANTokenizer', arch=dict(
        hidden_channels=32, channel_mult=(1, 1), num_res_blocks=1, z_channels=8,
        quantized_embed_dim=8, num_embeddings=16, resolution=8)),
}


def _save(path, module, prefix='backbone.', drop=(), extra=None):
    state = {prefix + k: v for k, v in module.state_dict().items()
             if not any(d in k for d in drop)}
    state.update(extra or {})
    torch.save({'state_dict': state, 'meta': {}}, path)
    return str(path)


@pytest.fixture
def warnings_log():
    """What mmengine's current logger prints at WARNING and above (read directly: its stream
    handler is bound to whatever stdout was when an earlier test created it)."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setLevel(logging.WARNING)
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield buf
    logger.removeHandler(handler)


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    """An empty hub cache and no proxy: a URL is tried directly."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    for key in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv('no_proxy', '*')
    return str(tmp_path / 'torch' / 'hub' / 'checkpoints' / 'x.pth')


def test_convnextv2_femto_checkpoint_into_atto_loads_nothing(tmp_path):
    """The issue's case: every tensor of another width; refused also with strict=False."""
    ckpt = _save(tmp_path / 'femto.pth', ConvNeXtV2('femto'))
    for extra in ({}, dict(strict=False)):
        atto = ConvNeXtV2('atto', init_cfg=dict(type='Pretrained', checkpoint=ckpt,
                                                prefix='backbone.', **extra))
        with pytest.raises(RuntimeError) as err:
            atto.init_weights()
        msg = str(err.value)
        assert msg.startswith(f"ConvNeXtV2 init_cfg=dict(type='Pretrained', checkpoint={ckpt!r}, "
                              "prefix='backbone.'): 0 of the model's "), msg
        total = int(re.search(r"0 of the model's (\d+) tensors loaded", msg).group(1))
        assert f'0 missing, 0 unexpected, {total} shape-mismatched keys (0 tensors loaded)' in msg
        assert (f'shape mismatch ({total}): downsample_layers.0.0.weight (48, 3, 4, 4) in '
                'checkpoint vs (40, 3, 4, 4) in model') in msg
        assert 'Nothing would be loaded: the model would start from random weights.' in msg


def test_partial_load_below_the_fraction_needs_strict_false(tmp_path, warnings_log):
    src = VisionLLaMA(arch=TINY, img_size=32, patch_size=4)
    ckpt = _save(tmp_path / 'pre.pth', src, drop=('layers.1.', ),
                 extra={'backbone.extra.weight': torch.zeros(1)})
    cfg = dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.')
    with pytest.raises(RuntimeError) as err:
        VisionLLaMA(arch=TINY, img_size=32, patch_size=4, init_cfg=cfg).init_weights()
    msg = str(err.value)
    loaded, total = map(int, re.search(r"(\d+) of the model's (\d+) tensors loaded", msg).groups())
    assert 0 < loaded < MIN_LOADED * total
    assert re.search(rf'{total - loaded} missing, 1 unexpected, 0 shape-mismatched keys '
                     rf'\({loaded} tensors loaded\)', msg), msg
    assert re.search(r'missing in the checkpoint \(\d+\): layers\.1\.', msg), msg
    assert 'not in the model (1): extra.weight' in msg
    assert ('at least 90% of them must load. Check the config and the checkpoint match (arch, '
            'converted keys, prefix). To load only the matching tensors on purpose, add '
            'strict=False to the init_cfg (or set `load_strict = False` in the config).') in msg
    # on purpose: strict=False in the init_cfg, or load_strict=False (the Runner's context)
    on_purpose = VisionLLaMA(arch=TINY, img_size=32, patch_size=4, init_cfg=dict(cfg, strict=False))
    on_purpose.init_weights()
    by_config = VisionLLaMA(arch=TINY, img_size=32, patch_size=4, init_cfg=cfg)
    with partial_pretrained():
        by_config.init_weights()
    reference = src.state_dict()
    for model in (on_purpose, by_config):
        state = model.state_dict()
        assert all(torch.equal(state[k], reference[k]) for k in reference if 'layers.1.' not in k)
    out = warnings_log.getvalue()
    assert out.count(f"VisionLLaMA {cfg_text(cfg)}: loading the matching tensors only "
                     f'({loaded} of {total})') == 2, out
    assert 'unexpected key in source state_dict: extra.weight' in out
    assert re.search(r'missing keys in source state_dict: layers\.1\.', out)
    # strict=True: one extra key is enough to refuse, even with every model tensor loaded
    full = _save(tmp_path / 'full.pth', src, extra={'backbone.extra.weight': torch.zeros(1)})
    with pytest.raises(RuntimeError, match=r'0 missing, 1 unexpected, 0 shape-mismatched keys '
                                           r'[\s\S]*every key must fit \(strict=True\)'):
        VisionLLaMA(arch=TINY, img_size=32, patch_size=4, init_cfg=dict(
            type='Pretrained', checkpoint=full, prefix='backbone.', strict=True)).init_weights()


def cfg_text(cfg):
    return (f"init_cfg=dict(type='Pretrained', checkpoint={cfg['checkpoint']!r}, "
            f"prefix={cfg['prefix']!r})")


def test_wrong_prefix_and_unknown_keys(tmp_path):
    ckpt = _save(tmp_path / 'pre.pth', VisionLLaMA(arch=TINY, img_size=32, patch_size=4))
    with pytest.raises(KeyError, match=r"VisionLLaMA: no key of .*pre\.pth starts with prefix "
                                       r"'visual\.'; its keys start with \['backbone\.'\]"):
        VisionLLaMA(arch=TINY, img_size=32, patch_size=4, init_cfg=dict(
            type='Pretrained', checkpoint=ckpt, prefix='visual')).init_weights()
    with pytest.raises(RuntimeError, match=r"0 tensors loaded\)[\s\S]*The checkpoint's keys under "
                                           r"'backbone\.' fit the model: add prefix='backbone\.' "
                                           r"to the init_cfg\.$"):
        VisionLLaMA(arch=TINY, img_size=32, patch_size=4, init_cfg=dict(
            type='Pretrained', checkpoint=ckpt)).init_weights()
    with pytest.raises(ValueError, match=r"unknown keys \['strcit'\]; valid: \['type', "
                                         r"'checkpoint', 'prefix', 'map_location', 'strict', "
                                         r"'min_loaded'\]"):
        VisionLLaMA(arch=TINY, img_size=32, patch_size=4, init_cfg=dict(
            type='Pretrained', checkpoint=ckpt, strcit=False)).init_weights()
    with pytest.raises(ValueError, match=r'min_loaded must be a fraction in \(0, 1\], got 90'):
        VisionLLaMA(arch=TINY, img_size=32, patch_size=4, init_cfg=dict(
            type='Pretrained', checkpoint=ckpt, min_loaded=90)).init_weights()
    missing = str(tmp_path / 'nowhere.pth')
    with pytest.raises(FileNotFoundError, match=rf"^VisionLLaMA init_cfg=dict\(type='Pretrained', "
                                                rf"checkpoint='{missing}'\): checkpoint {missing} "
                                                r"can not be found\."):
        VisionLLaMA(arch=TINY, img_size=32, patch_size=4, init_cfg=dict(
            type='Pretrained', checkpoint=missing)).init_weights()


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_every_family_loads_its_own_checkpoint_and_refuses_a_foreign_one(family, tmp_path):
    torch.manual_seed(0)
    src = MODELS.build(FAMILIES[family])
    own = _save(tmp_path / 'own.pth', src, prefix='')
    model = MODELS.build({**FAMILIES[family], 'init_cfg': dict(type='Pretrained', checkpoint=own)})
    model.init_weights()
    mine, theirs = model.state_dict(), src.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    torch.save({'state_dict': {'conv1.weight': torch.zeros(8, 3, 7, 7)}}, tmp_path / 'r.pth')
    model = MODELS.build({**FAMILIES[family], 'init_cfg': [
        dict(type='Constant', layer='Linear', val=0.),
        dict(type='Pretrained', checkpoint=str(tmp_path / 'r.pth'))]})
    with pytest.raises(RuntimeError, match=rf"^{family} init_cfg=dict\(type='Pretrained', "
                                           rf"checkpoint='.*r\.pth'\): 0 of the model's \d+ "
                                           r"tensors loaded[\s\S]*not in the model \(1\): "
                                           r"conv1\.weight"):
        model.init_weights()


def test_load_strict_false_still_refuses_a_checkpoint_that_loads_nothing():
    model = VisionLLaMA(arch=TINY, img_size=32, patch_size=4)
    with pytest.raises(RuntimeError, match=r'checkpoint other\.pth does not fit the model '
                                           r'\(VisionLLaMA\): \d+ missing, 1 unexpected, 0 '
                                           r'shape-mismatched keys \(0 tensors loaded\)[\s\S]*'
                                           r'Nothing would be loaded, even with '
                                           r'load_strict=False'):
        load_state_dict_checked(model, {'foo.weight': torch.zeros(1)}, 'other.pth', strict=False)


def test_unreachable_url_is_one_line_and_a_cached_copy_is_used(no_network):
    with pytest.raises(RuntimeError) as err:
        load_checkpoint_source(URL, what='load_from')
    msg = str(err.value)
    assert msg.startswith(f'load_from: could not download {URL} (URLError: '), msg
    assert ('Download it on a machine with internet access and pass the local path instead (or '
            f'put the file at {no_network}, where it is looked for first).') in msg
    assert '\n' not in msg and err.value.__suppress_context__  # no chained urllib tracebacks
    model = VisionLLaMA(arch=TINY, img_size=32, patch_size=4, init_cfg=dict(
        type='Pretrained', checkpoint=URL))
    with pytest.raises(RuntimeError, match=rf"^VisionLLaMA init_cfg=dict\(type='Pretrained', "
                                           rf"checkpoint='{URL}'\): could not download"):
        model.init_weights()
    # a copy in the hub cache (downloaded elsewhere) is read with weights_only=True, offline
    assert checkpoint_cache_path(URL) == no_network
    src = VisionLLaMA(arch=TINY, img_size=32, patch_size=4)
    os.makedirs(os.path.dirname(no_network), exist_ok=True)
    torch.save({'state_dict': src.state_dict()}, no_network)
    model = VisionLLaMA(arch=TINY, img_size=32, patch_size=4, init_cfg=dict(
        type='Pretrained', checkpoint=URL))
    model.init_weights()
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in model.state_dict().items())


def test_test_py_with_an_unreachable_url(no_network, digits_root, tmp_path):
    config = os.path.join(REPO, 'configs/quickstart/visionllama-tiny-p4_1xb64-20e_digits.py')
    proc = run_python([sys.executable, 'tools/test.py', config, URL, '--work-dir', str(tmp_path),
                       '--cfg-options', f'test_dataloader.dataset.data_root={digits_root}',
                       'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
                       'test_dataloader.dataset.indices=8'],
                      env=dict(TORCH_HOME=os.environ['TORCH_HOME'], no_proxy='*'))
    assert proc.returncode != 0
    out = proc.stdout
    assert f'RuntimeError: load_from: could not download {URL} (URLError: ' in out, out[-3000:]
    assert out.count('Traceback') == 1 and 'During handling' not in out, out[-3000:]
