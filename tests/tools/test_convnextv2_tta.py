"""The multi-scale + flip test of the ConvNeXt V2 UperNet configs (`tools/test.py --tta`), built
through mmseg from the resolved config and run on one ADE20K-sized image (683 wide, 512 high).

Each ratio r of 0.75 / 0.875 / 1 / 1.125 / 1.25 scales the test size (2048, 512) to
(2048 r, 512 r); the image is resized to fit it with its aspect ratio kept (mmcv rounds each side
to the nearest pixel), then tested unflipped and flipped: 10 views. mmseg 1.x's stock ADE20K TTA
(scale factors 0.5-1.75 of the raw image) would give other sizes and 12 views.
"""
import glob
import os.path as osp

import mmcv
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

from ..conftest import REPO

CONFIGS = sorted(osp.relpath(p, REPO) for p in
                 glob.glob(osp.join(REPO, 'configs/convnextv2/upernet_convnextv2-*.py')))
# (height, width) of a 512 x 683 image at each ratio, each unflipped then flipped
EXPECTED = [(384, 512), (384, 512), (448, 598), (448, 598), (512, 683), (512, 683),
            (576, 768), (576, 768), (640, 854), (640, 854)]


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
    assert len(CONFIGS) == 4, CONFIGS


@pytest.mark.parametrize('config', CONFIGS)
def test_tta_resizes_to_the_paper_ratios_of_2048x512_with_flip(config, ade_image):
    cfg = Config.fromfile(osp.join(REPO, config))
    assert cfg.tta_model.type == 'SegTTAModel'
    init_default_scope('mmseg')
    pipeline = Compose(cfg.tta_pipeline)
    out = pipeline(dict(ade_image))
    shapes = [tuple(x.shape[-2:]) for x in out['inputs']]
    flips = [s.metainfo['flip'] for s in out['data_samples']]
    assert shapes == EXPECTED
    assert flips == [False, True] * 5
    assert all(s.metainfo['ori_shape'] == (512, 683) for s in out['data_samples'])
    assert all(tuple(s.metainfo['img_shape']) == shape
               for s, shape in zip(out['data_samples'], EXPECTED))
    # the ground truth stays at the original size (the merged prediction is resized back)
    assert all(tuple(s.gt_sem_seg.data.shape[-2:]) == (512, 683) for s in out['data_samples'])
