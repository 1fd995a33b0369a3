"""Every dense-prediction config, as shipped, through tools/train.py and tools/test.py on tiny data
in the real ADE20K / COCO formats. Only the backbone size, image scale and iteration count are
shrunk, with --cfg-options (what a user has)."""
import os.path as osp
import re

import pytest

from ..conftest import run_tool
from .dense_opts import SEG_CONFIGS, seg_opts, stock_tools


@pytest.mark.parametrize('config', sorted(SEG_CONFIGS))
def test_seg_config_trains_and_tests(config, python, ade20k_root, tmp_path):
    opts = ['--cfg-options', *SEG_CONFIGS[config], *seg_opts(ade20k_root)]
    out = run_tool([python, 'tools/train.py', config, '--work-dir', str(tmp_path), *opts])
    assert re.search(r'Iter\(train\) \[4/4\]', out), out[-3000:]
    out = run_tool([python, 'tools/test.py', config, str(tmp_path / 'iter_4.pth'),
                    '--work-dir', str(tmp_path), *opts])
    assert re.search(r"'mIoU': [\d.]+", out), out[-3000:]


def test_stock_mmseg_tools_run_pyramid_upernet(python, ade20k_root, tmp_path):
    config = 'configs/visionllama/upernet_visionllama-pyramid-small_8xb2-160k_ade20k-512x512.py'
    opts = ['--cfg-options', *SEG_CONFIGS[config], *seg_opts(ade20k_root, iters=2)]
    tools = stock_tools('mmseg')
    run_tool([python, osp.join(tools, 'train.py'), config, '--work-dir', str(tmp_path), *opts])
    out = run_tool([python, osp.join(tools, 'test.py'), config, str(tmp_path / 'iter_2.pth'),
                    '--work-dir', str(tmp_path), *opts])
    assert re.search(r'mIoU: [\d.]+', out), out[-3000:]
