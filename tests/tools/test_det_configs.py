"""Every dense-prediction config, as shipped, through tools/train.py and tools/test.py on tiny data
in the real ADE20K / COCO formats. Only the backbone size, image scale and iteration count are
shrunk, with --cfg-options (what a user has)."""
import os.path as osp
import re

import pytest

from ..conftest import run_tool
from ..data_fixtures import COCO_SIZES, write_coco
from .dense_opts import DET_CONFIGS, det_opts, stock_tools


@pytest.fixture(scope='module')
def coco_real_sizes(tmp_path_factory):
    """COCO-format images of real COCO sizes (640x427, 500x375, 427x640)."""
    return write_coco(str(tmp_path_factory.mktemp('coco_real') / 'coco'), num_train=8, num_val=3,
                      size=COCO_SIZES)


@pytest.mark.parametrize('config', sorted(DET_CONFIGS))
def test_det_config_trains_and_tests(config, python, coco_real_sizes, tmp_path):
    """Resized by the shipped pipelines (shrunk scales) to e.g. 128x85; the shipped data
    preprocessor then pads each batch to a multiple of 32, as in a real run."""
    shrink, lsj, ckpt = DET_CONFIGS[config]
    opts = ['--cfg-options', *shrink, *det_opts(coco_real_sizes, lsj)]
    run_tool([python, 'tools/train.py', config, '--work-dir', str(tmp_path), *opts])
    out = run_tool([python, 'tools/test.py', config, str(tmp_path / ckpt),
                    '--work-dir', str(tmp_path), *opts])
    bbox = re.search(r"'coco/bbox_mAP': ([\d.-]+)", out)
    segm = re.search(r"'coco/segm_mAP': ([\d.-]+)", out)
    assert bbox and segm, out[-3000:]
    print(f'{osp.basename(config)} on real COCO sizes: bbox mAP {bbox.group(1)}, '
          f'segm mAP {segm.group(1)}')


def test_stock_mmdet_tools_run_pyramid_mask_rcnn(python, coco_root, tmp_path):
    config = 'configs/visionllama/mask-rcnn_visionllama-pyramid-base_fpn_ms-crop-3x_coco.py'
    shrink, lsj, ckpt = DET_CONFIGS[config]
    opts = ['--cfg-options', *shrink, *det_opts(coco_root, lsj)]
    tools = stock_tools('mmdet')
    run_tool([python, osp.join(tools, 'train.py'), config, '--work-dir', str(tmp_path), *opts])
    out = run_tool([python, osp.join(tools, 'test.py'), config, str(tmp_path / ckpt),
                    '--work-dir', str(tmp_path), *opts])
    assert re.search(r'coco/bbox_mAP: [\d.-]+', out), out[-3000:]
