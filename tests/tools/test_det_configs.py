"""Every dense-prediction config, as shipped, through tools/train.py and tools/test.py on tiny data
in the real ADE20K / COCO formats. Only the backbone size, image scale and iteration count are
shrunk, with --cfg-options (what a user has)."""
import os.path as osp
import re

import pytest

from ..conftest import run_tool
from .dense_opts import DET_CONFIGS, det_opts, stock_tools


@pytest.mark.parametrize('config', sorted(DET_CONFIGS))
def test_det_config_trains_and_tests(config, python, coco_root, tmp_path):
    shrink, lsj, ckpt = DET_CONFIGS[config]
    opts = ['--cfg-options', *shrink, *det_opts(coco_root, lsj)]
    run_tool([python, 'tools/train.py', config, '--work-dir', str(tmp_path), *opts])
    out = run_tool([python, 'tools/test.py', config, str(tmp_path / ckpt),
                    '--work-dir', str(tmp_path), *opts])
    assert re.search(r"'coco/bbox_mAP': [\d.-]+", out), out[-3000:]
    assert re.search(r"'coco/segm_mAP': [\d.-]+", out), out[-3000:]


def test_stock_mmdet_tools_run_pyramid_mask_rcnn(python, coco_root, tmp_path):
    config = 'configs/visionllama/mask-rcnn_visionllama-pyramid-base_fpn_ms-crop-3x_coco.py'
    shrink, lsj, ckpt = DET_CONFIGS[config]
    opts = ['--cfg-options', *shrink, *det_opts(coco_root, lsj)]
    tools = stock_tools('mmdet')
    run_tool([python, osp.join(tools, 'train.py'), config, '--work-dir', str(tmp_path), *opts])
    out = run_tool([python, osp.join(tools, 'test.py'), config, str(tmp_path / ckpt),
                    '--work-dir', str(tmp_path), *opts])
    assert re.search(r'coco/bbox_mAP: [\d.-]+', out), out[-3000:]
