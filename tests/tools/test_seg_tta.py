"""Multi-scale + flip test (`tools/test.py --tta`) of every UperNet config.

Pipeline level, every config, on one ADE20K-sized image (683 wide, 512 high):

* ConvNeXt V2 (the paper's ratios): each ratio r of 0.75 / 0.875 / 1 / 1.125 / 1.25 scales the
  test size (2048, 512) to (2048 r, 512 r); the image is resized to fit it with its aspect ratio
  kept (mmcv rounds each side to the nearest pixel), then tested unflipped and flipped: 10 views.
* VisionLLaMA and ViTamin (mmseg's ADE20K default; the VisionLLaMA paper reports single-scale
  only, ViTamin has no closed-vocabulary result): the image itself scaled by 0.5 ... 1.75, each
  unflipped and flipped: 12 views.

One real `tools/test.py CONFIG CKPT --tta --out` run per family (random weights, shrunk through
--cfg-options, the ADE20K-format shapes fixture): the dumped predictions are the argmax of the
mean softmax of every view (each view run here through the model's own test_step, which resizes
and unflips its scores to the original image), and differ from the single-scale prediction.
"""
import glob
import os.path as osp
import pickle
import re

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope

from ..conftest import REPO, run_tool
from .dense_opts import CONVNEXTV2_UPERNET, VITAMIN_UPERNET

CONFIGS = sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs/*/upernet_*.py')))
# (height, width) of a 512 x 683 image, each unflipped then flipped
PAPER_CONVNEXTV2 = [(384, 512), (448, 598), (512, 683), (576, 768), (640, 854)]
# 683 x 0.5 = 341.5 -> 342, 683 x 1.5 = 1024.5 -> 1025 (rounded half up), 683 x 1.75 = 1195.25
MMSEG_ADE20K = [(256, 342), (384, 512), (512, 683), (640, 854), (768, 1025), (896, 1195)]


def _expected(config):
    return PAPER_CONVNEXTV2 if '/convnextv2/' in config else MMSEG_ADE20K


@pytest.fixture(scope='module')
def ade_image(tmp_path_factory):
    root = tmp_path_factory.mktemp('tta')
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (512, 683, 3), dtype=np.uint8)
    seg = rng.integers(0, 151, (512, 683), dtype=np.uint8)
    mmcv.imwrite(img, str(root / 'img.jpg'))
    mmcv.imwrite(seg, str(root / 'seg.png'))
    return dict(img_path=str(root / 'img.jpg'), seg_map_path=str(root / 'seg.png'),
                reduce_zero_label=True, seg_fields=[])


def test_every_upernet_config_is_covered():
    assert len(CONFIGS) == 12, CONFIGS
    assert {c.split('/')[1] for c in CONFIGS} == set(FAMILY_RUNS)


@pytest.mark.parametrize('config', CONFIGS)
def test_tta_pipeline_views(config, ade_image):
    cfg = Config.fromfile(osp.join(REPO, config))
    assert cfg.tta_model.type == 'SegTTAModel'
    # the preprocessor --tta builds the segmentor with is checked for every config in
    # tests/test_configs.py (ViTamin: CLIP's mean/std, not ImageNet's)
    init_default_scope('mmseg')
    out = Compose(cfg.tta_pipeline)(dict(ade_image))
    expected = [s for s in _expected(config) for _ in range(2)]
    shapes = [tuple(x.shape[-2:]) for x in out['inputs']]
    assert shapes == expected
    assert [s.metainfo['flip'] for s in out['data_samples']] == [False, True] * (len(shapes) // 2)
    assert all(s.metainfo['ori_shape'] == (512, 683) for s in out['data_samples'])
    assert all(tuple(s.metainfo['img_shape']) == shape
               for s, shape in zip(out['data_samples'], expected))
    # the ground truth stays at the original size (the merged prediction is resized back), with
    # ADE20K's zero label reduced (0 -> 255, 1 -> 0)
    gt = mmcv.imread(ade_image['seg_map_path'], flag='unchanged').astype(np.int64)
    for s in out['data_samples']:
        assert np.array_equal(s.gt_sem_seg.data[0].numpy(), np.where(gt == 0, 255, gt - 1))


# the pyramid backbone shrunk to one block per stage (the released sizes name their arch)
TINY_PYRAMID_UPERNET = [
    'model.backbone.arch._delete_=True',
    'model.backbone.arch.embed_dims=[16,32,48,64]', 'model.backbone.arch.depths=[1,1,1,1]',
    'model.backbone.arch.num_heads=[1,2,3,4]', 'model.backbone.arch.ffn_dims=[32,64,96,128]',
    'model.backbone.init_cfg=None', 'model.decode_head.in_channels=[16,32,48,64]',
    'model.decode_head.channels=16', 'model.auxiliary_head.in_channels=48',
    'model.auxiliary_head.channels=8']
# One config per family: a tiny model and, for the ConvNeXt V2 ratios of the 2048x512 test size,
# that size shrunk to 128x32 (a 64x96 image becomes 24x36 ... 40x60)
FAMILY_RUNS = {
    'visionllama': ('configs/visionllama/upernet_visionllama-pyramid-small_8xb2-160k_ade20k-512x512.py',
                    TINY_PYRAMID_UPERNET, []),
    'vitamin': ('configs/vitamin/upernet_vitamin-small_clip-pre_8xb2-amp-160k_ade20k-512x512.py',
                VITAMIN_UPERNET, []),
    'convnextv2': ('configs/convnextv2/upernet_convnextv2-tiny_fcmae-ft-pre_8xb2-amp-160k_ade20k-512x512.py',
                   CONVNEXTV2_UPERNET,
                   [f'tta_pipeline.1.transforms.0.{i}.scale=({int(128 * r)},{int(32 * r)})'
                    for i, r in enumerate([0.75, 0.875, 1.0, 1.125, 1.25])]),
}


def _options(root, model_opts, tta_opts):
    opts = [*model_opts, *tta_opts, f'test_dataloader.dataset.data_root={root}',
            'test_dataloader.dataset.indices=1',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
            'test_dataloader.dataset.pipeline.1.scale=(128,64)',
            'model.data_preprocessor.size=(64,64)']
    return opts


def _merge(opts):
    parsed = {}
    for kv in opts:
        key, value = kv.split('=', 1)
        parsed[key] = DictAction._parse_iterable(value)
    return parsed


@pytest.mark.parametrize('family', sorted(FAMILY_RUNS))
def test_tools_test_tta_merges_every_view(family, python, ade20k_root, tmp_path):
    config, model_opts, tta_opts = FAMILY_RUNS[family]
    opts = _options(ade20k_root, model_opts, tta_opts)
    cfg = Config.fromfile(osp.join(REPO, config))
    if cfg.model.test_cfg.mode == 'slide':
        opts += ['model.test_cfg.crop_size=(64,64)', 'model.test_cfg.stride=(43,43)']
    cfg.merge_from_dict(_merge(opts))
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    # sharper class scores than a random head gives (its softmax is near 1/150 everywhere, where
    # float noise between two processes decides the argmax)
    with torch.no_grad():
        model.decode_head.conv_seg.weight.mul_(50)
    ckpt = str(tmp_path / 'random.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)

    out = run_tool([python, 'tools/test.py', config, ckpt, '--tta', '--work-dir', str(tmp_path),
                    '--out', str(tmp_path / 'tta.pkl'), '--cfg-options', *opts])
    assert re.search(r"'mIoU': [\d.]+", out), out[-3000:]
    with open(tmp_path / 'tta.pkl', 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == 1  # the first validation image of the fixture

    tta = Compose(cfg.tta_pipeline)
    single = Compose(cfg.test_dataloader.dataset.pipeline)
    views_per_image = 2 * len(_expected(config))
    differs = 0
    for pred in dumped:
        info = dict(img_path=pred['img_path'], seg_map_path=pred['seg_map_path'],
                    reduce_zero_label=True, seg_fields=[])
        views = tta(dict(info))
        assert len(views['inputs']) == views_per_image
        with torch.no_grad():
            scores = [model.test_step(pseudo_collate([dict(inputs=x, data_samples=s)]))[0]
                      .seg_logits.data.softmax(0) for x, s in zip(views['inputs'],
                                                                  views['data_samples'])]
            mean = torch.stack(scores).mean(0)
            top2 = mean.topk(2, dim=0).values
            merged = mean.argmax(0)
            ss = model.test_step(pseudo_collate([single(dict(info))]))[0].pred_sem_seg.data[0]
        got = pred['pred_sem_seg']['data'][0]
        assert got.shape == merged.shape == ss.shape
        # the tool ran in another process: where the top two mean scores are within float noise
        # the argmax may differ
        clear = (top2[0] - top2[1]) > 1e-3
        assert clear.float().mean() > 0.5, family
        agree = float((got[clear] == merged[clear]).float().mean())
        assert agree == 1.0, (family, agree)
        differs += int((got != ss).sum())
    print(f'{family}: --tta merged {views_per_image} views per image; {differs} pixels of 1 '
          f'image differ from the single-scale prediction')
    assert differs > 0
