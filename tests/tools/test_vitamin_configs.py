"""The ViTamin configs beyond CLIP, as shipped: ImageNet-1k fine-tuning, UperNet and Mask R-CNN.

Every one builds at its real size (on the meta device) with the exact parameter count and head
widths that match the backbone; the fine-tuning configs train and test through tools/train.py and
tools/test.py on the digits (model size, image size and data changed with --cfg-options); a CLIP
checkpoint in this package's layout (image tower under ``visual.``) loads through each kind's
``init_cfg``. The ViTamin-S UperNet and Mask R-CNN configs train and test on real ADE20K / COCO
image sizes in the dense harness (``dense_opts.SEG_CONFIGS`` / ``DET_CONFIGS``)."""
import glob
import importlib
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import visionllama_mm  # noqa: F401
from visionllama_mm.engine.launch import toolbox_of
from ..conftest import REPO, run_tool
from .dense_opts import DET_CONFIGS, SEG_CONFIGS, TINY_VITAMIN
from .test_cls_configs import _data


def _configs(pattern):
    # the CLIP / zero-shot configs of the family are tested with the CLIP model
    return sorted(osp.basename(p) for p in glob.glob(osp.join(REPO, 'configs/vitamin', pattern))
                  if 'zeroshot' not in p and not osp.basename(p).startswith('clip'))


FINETUNE = _configs('vitamin-*_clip-pre_*_in1k.py')
UPERNET = _configs('upernet_vitamin-*.py')
MRCNN = _configs('mask-rcnn_vitamin-*.py')
SIZES = ('small', 'base', 'large')

# the image tower at 224 without the CLIP projection (196-token pos_embed and fc_norm
# included), and its width D
TRUNK_224 = {'small': (21_877_696, 384), 'base': (87_132_032, 768), 'large': (332_531_616, 1024)}

# 64x64 crops; test resize 73 / crop 64 (the shipped 256 / 224 ratio)
FINETUNE_OPTS = [*TINY_VITAMIN, 'model.backbone.img_size=64', 'model.head.in_channels=32',
                 'model.head.num_classes=10', 'model.head.loss.num_classes=10',
                 'data_preprocessor.num_classes=10',
                 'train_dataloader.dataset.pipeline.1.scale=64',
                 'val_dataloader.dataset.pipeline.1.scale=73',
                 'val_dataloader.dataset.pipeline.2.crop_size=64',
                 'test_dataloader.dataset.pipeline.1.scale=73',
                 'test_dataloader.dataset.pipeline.2.crop_size=64']


def _size(config):
    return re.search(r'vitamin-(small|base|large)_', config).group(1)


def _of(group, size):
    return next(c for c in group if _size(c) == size)


def _build(cfg):
    scope = toolbox_of(cfg)
    with DefaultScope.overwrite_default_scope(scope):
        return importlib.import_module(f'{scope}.registry').MODELS.build(cfg.model)


def test_config_lists_are_complete():
    for group in (FINETUNE, UPERNET, MRCNN):
        assert sorted(_size(c) for c in group) == sorted(SIZES), group
    assert [c for c in SEG_CONFIGS if 'vitamin' in c] == [
        'configs/vitamin/upernet_vitamin-small_clip-pre_8xb2-amp-160k_ade20k-512x512.py']
    assert [c for c in DET_CONFIGS if 'vitamin' in c] == [
        'configs/vitamin/mask-rcnn_vitamin-small_clip-pre_fpn_8xb4-amp-lsj-3x_coco.py']


@pytest.mark.parametrize('config', FINETUNE + UPERNET + MRCNN)
def test_config_builds_with_the_exact_parameter_count(config):
    """Backbone params = the exact 224 trunk, less fc_norm for the featmap backbones, with the
    position embedding of the config's img_size; heads and necks take the backbone's widths."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/vitamin', config))
    backbone = cfg.model.backbone
    assert backbone.type == 'ViTamin' and backbone.arch == _size(config)
    assert cfg.optim_wrapper.constructor == 'LayerwiseDecayOptimWrapperConstructor'
    with torch.device('meta'):
        model = _build(cfg)
    trunk, dims = TRUNK_224[_size(config)]
    grid = backbone.img_size // 16
    expected = trunk + (grid * grid - 196) * dims
    if backbone.out_type == 'featmap':
        expected -= 2 * dims
    assert sum(p.numel() for p in model.backbone.parameters()) == expected
    widths = list(model.backbone.channels)
    if config in FINETUNE:
        assert model.head.fc.in_features == dims
        assert sum(p.numel() for p in model.parameters()) == trunk + dims * 1000 + 1000
    elif config in UPERNET:
        assert list(cfg.model.decode_head.in_channels) == widths
        assert cfg.model.auxiliary_head.in_channels == dims
    else:
        assert list(cfg.model.neck.in_channels) == widths
        assert (cfg.model.neck.num_outs, cfg.model.neck.add_extra_convs) == (5, 'on_output')


# base differs from small in the arch and head width only (built above); large adds accumulation
@pytest.mark.parametrize('config', [_of(FINETUNE, 'small'), _of(FINETUNE, 'large')])
def test_finetune_config_trains_and_tests(config, python, digits_root, tmp_path):
    path = f'configs/vitamin/{config}'
    opts = ['--cfg-options', *FINETUNE_OPTS, *_data(digits_root), 'train_cfg.max_epochs=1']
    out = run_tool([python, 'tools/train.py', path, '--work-dir', str(tmp_path), *opts])
    assert re.search(r'Epoch\(train\)\s+\[1\]\[2/2\]', out), out[-3000:]
    assert 'layer-wise lr decay' in out, out[-3000:]
    out = run_tool([python, 'tools/test.py', path, str(tmp_path / 'epoch_1.pth'),
                    '--work-dir', str(tmp_path), *opts])
    assert re.search(r"'accuracy/top1': [\d.]+", out), out[-3000:]


@pytest.mark.parametrize('config', [_of(group, 'small') for group in (FINETUNE, UPERNET, MRCNN)])
def test_clip_checkpoint_loads_through_init_cfg(config, tmp_path):
    """A CLIP checkpoint (image tower at 224 under ``visual.``, plus projection, text tower and
    logit scale) -> every backbone tensor of the config's model; the dense configs' position
    embedding is resized to their img_size grid."""
    from timm.layers import resample_abs_pos_embed

    from visionllama_mm.models.backbones.vitamin import ViTamin
    arch = dict(stem_channels=8, channels=(8, 16), depths=(1, 1), embed_dims=32, num_layers=2,
                num_heads=2)
    # random values everywhere, so that no tensor equals a fresh initialisation (LN 1 / 0, zero
    # biases) by chance
    clip = {f'visual.{k}': torch.randn_like(v)
            for k, v in ViTamin(arch=arch, img_size=224).state_dict().items()}
    clip.update({'visual_proj.weight': torch.randn(16, 32), 'logit_scale': torch.tensor(4.6),
                 'text.token_embedding.weight': torch.randn(10, 16)})
    ckpt = tmp_path / 'clip.pth'
    torch.save(dict(state_dict=clip), ckpt)

    cfg = Config.fromfile(osp.join(REPO, 'configs/vitamin', config))
    cfg.model.backbone.arch = arch
    cfg.model.backbone.init_cfg.checkpoint = str(ckpt)
    model = _build(cfg)
    model.init_weights()
    grid = cfg.model.backbone.img_size // 16
    loaded = model.backbone.state_dict()
    assert loaded.keys() <= {k[len('visual.'):] for k in clip}
    for key, value in loaded.items():
        src = clip['visual.' + key]
        if key == 'pos_embed' and grid != 14:
            src = resample_abs_pos_embed(src, [grid, grid], [14, 14], num_prefix_tokens=0,
                                         interpolation='bicubic', antialias=True)
        torch.testing.assert_close(value, src, rtol=0, atol=0, msg=key)
