"""What the VisionLLaMA paper-row configs do beyond their recorded fields: the ViTDet LSJ data as
the official config pads it, and the 20-epoch fine-tune stage loading the 800-epoch stage."""
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import visionllama_mm  # noqa: F401
from visionllama_mm.models.builder import build_model_from_cfg
from ..conftest import REPO

VITDET = 'configs/visionllama/mask-rcnn_visionllama-base-p16_mae-800e-pre_vitdet_8xb4-accum2-lsj-36e_coco.py'


def _coco_dataset(cfg, loader, root):
    from mmdet.registry import DATASETS
    dataset_cfg = cfg[loader].dataset.copy()
    dataset_cfg.data_root = root + '/'
    dataset_cfg.metainfo = dict(classes=('rectangle', 'disc', 'triangle'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.build(dataset_cfg)


def test_vitdet_images_are_padded_to_1024_with_114(coco_root):
    """Test: the long side resized to 1024, then padded to 1024x1024 with pixel value 114 (before
    normalisation), so the global blocks see the 64x64 grid of training. Train: the same pad."""
    cfg = Config.fromfile(osp.join(REPO, VITDET))
    sample = _coco_dataset(cfg, 'test_dataloader', coco_root)[0]
    img = sample['inputs']
    assert tuple(img.shape) == (3, 1024, 1024)
    # the 64x96 image scaled by 1024/96 to 683x1024 (img_shape is the padded shape after Pad,
    # as in the official pipeline)
    sx, sy = sample['data_samples'].scale_factor
    h, w = round(64 * sy), round(96 * sx)
    assert (h, w) == (683, 1024) and sample['data_samples'].img_shape == (1024, 1024)
    assert (img[:, h:, :] == 114).all() and not (img[:, :h, :] == 114).all()
    train = _coco_dataset(cfg, 'train_dataloader', coco_root)
    np.random.seed(0)
    for i in range(4):
        sample = train[i]
        img = sample['inputs']
        assert tuple(img.shape) == (3, 1024, 1024)
        rows = (img != 114).any(dim=0).any(dim=1).nonzero()
        h = int(rows.max()) + 1  # the last row holding image content
        if h < 1024:
            assert (img[:, h:, :] == 114).all()
        assert not (img == 0).all(dim=0).any(dim=1).all()  # no zero padding rows


def test_fine_tune_stage_loads_the_800_epoch_stage():
    """The 224-px fine-tune config's model takes the 192-px (B) / 160-px (L) stage's weights
    with no missing, unexpected or mismatched key (RoPE tables are not parameters)."""
    tiny = ['model.backbone.arch.embed_dims', 'model.backbone.arch.num_layers',
            'model.backbone.arch.num_heads', 'model.backbone.arch.feedforward_channels']
    for size in ('base', 'large'):
        models = []
        for name in (f'visionllama-plain-{size}-p16_8xb256-800e_in1k.py',
                     f'visionllama-plain-{size}-p16_800e-pre_8xb64-20e_in1k.py'):
            cfg = Config.fromfile(osp.join(REPO, 'configs/visionllama', name))
            cfg.model.backbone.arch = dict(zip([k.split('.')[-1] for k in tiny],
                                               (32, 2, 2, 64)))
            cfg.model.head.in_channels = 32
            models.append(build_model_from_cfg(cfg))
        assert models[0].backbone.img_size != models[1].backbone.img_size
        result = models[1].load_state_dict(models[0].state_dict(), strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        x = torch.randn(1, 3, 224, 224)
        assert models[1](x, mode='tensor').shape == (1, 1000)


def test_two_stage_chain_through_tools(python, digits_root, tmp_path):
    """B's two Table-2 configs as a user chains them, shrunk: the low-resolution stage (48 px
    here), then the fine-tune stage at 64 px with `load_from` the first stage's checkpoint;
    the fine-tune loads it strictly (mmengine reports no missing or unexpected key)."""
    import re

    from ..conftest import run_tool
    from .test_cls_configs import TINY_PLAIN, _data
    common = [*TINY_PLAIN, 'model.head.in_channels=64', 'model.head.num_classes=10',
              'model.data_preprocessor.num_classes=10', *_data(digits_root, test=False),
              'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
              'train_cfg.max_epochs=1']
    first = tmp_path / 'stage1'
    run_tool([python, 'tools/train.py',
              'configs/visionllama/visionllama-plain-base-p16_8xb256-800e_in1k.py',
              '--work-dir', str(first), '--cfg-options', *common, 'model.backbone.img_size=48',
              'train_dataloader.dataset.pipeline.1.scale=48'])
    out = run_tool([python, 'tools/train.py',
                    'configs/visionllama/visionllama-plain-base-p16_800e-pre_8xb64-20e_in1k.py',
                    '--work-dir', str(tmp_path / 'stage2'), '--cfg-options', *common,
                    f'load_from={first / "epoch_1.pth"}', 'model.backbone.img_size=64',
                    'train_dataloader.dataset.pipeline.1.scale=64'])
    assert f'Load checkpoint from {first / "epoch_1.pth"}' in out, out[-3000:]
    assert 'missing keys' not in out and 'unexpected key' not in out, out[-3000:]
    assert re.search(r'Epoch\(train\)\s+\[1\]\[2/2\]', out), out[-3000:]
