"""Every dense-prediction config, as shipped, through tools/train.py and tools/test.py on tiny data
in the real ADE20K / COCO formats. Only the backbone size, image scale and iteration count are
shrunk, with --cfg-options (what a user has)."""
import os.path as osp
import re

import pytest
from mmengine.config import Config

from ..conftest import REPO, run_tool
from ..data_fixtures import COCO_SIZES, write_coco
from .dense_opts import DET_CONFIGS, det_opts, stock_tools


@pytest.fixture(scope='module')
def coco_real_sizes(tmp_path_factory):
    """COCO-format images of real COCO sizes (640x427, 500x375, 427x640)."""
    return write_coco(str(tmp_path_factory.mktemp('coco_real') / 'coco'), num_train=8, num_val=3,
                      size=COCO_SIZES)


AMP_DET_CONFIG = 'configs/convnextv2/mask-rcnn_convnextv2-tiny_fcmae-pre_fpn_8xb4-amp-lsj-3x_coco.py'


@pytest.mark.parametrize('config', sorted(DET_CONFIGS))
def test_det_config_trains_and_tests(config, python, coco_real_sizes, tmp_path):
    """Resized by the shipped pipelines (shrunk scales) to e.g. 128x85; the shipped data
    preprocessor then pads each batch to a multiple of 32, as in a real run."""
    shrink, lsj, ckpt = DET_CONFIGS[config]
    opts = ['--cfg-options', *shrink, *det_opts(coco_real_sizes, lsj)]
    amp = Config.fromfile(osp.join(REPO, config)).optim_wrapper.type == 'AmpOptimWrapper'
    if amp and config != AMP_DET_CONFIG:
        # AMP_DET_CONFIG runs the detector under CPU bf16 autocast; the other AMP configs train
        # in fp32: on a CPU without bf16 matmul (no AMX / AVX512-BF16, as on this machine) it is
        # emulated and the Mask R-CNN heads crawl (4 ViTDet iterations: 214 s in bf16, 21 s in
        # fp32). What the AMP wrapper does is tested in tests/tools/test_amp.py.
        opts.append('optim_wrapper.type=OptimWrapper')
    run_tool([python, 'tools/train.py', config, '--work-dir', str(tmp_path), *opts])
    out = run_tool([python, 'tools/test.py', config, str(tmp_path / ckpt),
                    '--work-dir', str(tmp_path), *opts])
    bbox = re.search(r"'coco/bbox_mAP': ([\d.-]+)", out)
    segm = re.search(r"'coco/segm_mAP': ([\d.-]+)", out)
    assert bbox and segm, out[-3000:]
    print(f'{osp.basename(config)} on real COCO sizes: bbox mAP {bbox.group(1)}, '
          f'segm mAP {segm.group(1)}')


def test_stock_mmdet_tools_run_pyramid_mask_rcnn(python, coco_root, tmp_path):
    config = 'configs/visionllama/mask-rcnn_visionllama-pyramid-base_fpn_8xb2-ms-crop-3x_coco.py'
    shrink, lsj, ckpt = DET_CONFIGS[config]
    # the stock tools keep the config's AmpOptimWrapper, which mmengine refuses without a GPU:
    # on a CPU a user of the stock tools asks for the plain wrapper, as here
    opts = ['--cfg-options', *shrink, *det_opts(coco_root, lsj), 'optim_wrapper.type=OptimWrapper']
    tools = stock_tools('mmdet')
    # new interpreters, as from a shell: only the config's custom_imports brings our types in
    run_tool([python, osp.join(tools, 'train.py'), config, '--work-dir', str(tmp_path), *opts],
             fresh=True)
    out = run_tool([python, osp.join(tools, 'test.py'), config, str(tmp_path / ckpt),
                    '--work-dir', str(tmp_path), *opts], fresh=True)
    assert re.search(r'coco/bbox_mAP: [\d.-]+', out), out[-3000:]
