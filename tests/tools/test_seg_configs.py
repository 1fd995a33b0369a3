"""Every dense-prediction config, as shipped, through tools/train.py and tools/test.py on tiny data
in the real ADE20K / COCO formats. Only the backbone size, image scale and iteration count are
shrunk, with --cfg-options (what a user has)."""
import os.path as osp
import re

import pytest

from ..conftest import run_tool
from ..data_fixtures import ADE20K_SIZES, write_ade20k
from .dense_opts import ODD_TEST_SCALE, SEG_CONFIGS, seg_opts, stock_tools


@pytest.fixture(scope='module')
def ade20k_real_sizes(tmp_path_factory):
    """ADE20K-format images of real ADE20K sizes (683x512, 500x375, 512x683)."""
    return write_ade20k(str(tmp_path_factory.mktemp('ade_real') / 'ADEChallengeData2016'),
                        num_train=8, num_val=3, size=ADE20K_SIZES)


@pytest.mark.parametrize('config', sorted(SEG_CONFIGS))
def test_seg_config_trains_and_tests(config, python, ade20k_real_sizes, tmp_path):
    """Validation and tools/test.py see 75x56 / 56x75 network inputs (whole or slide, as shipped)."""
    opts = ['--cfg-options', *SEG_CONFIGS[config],
            *seg_opts(ade20k_real_sizes, test_scale=ODD_TEST_SCALE)]
    out = run_tool([python, 'tools/train.py', config, '--work-dir', str(tmp_path), *opts])
    assert re.search(r'Iter\(train\) \[4/4\]', out), out[-3000:]
    out = run_tool([python, 'tools/test.py', config, str(tmp_path / 'iter_4.pth'),
                    '--work-dir', str(tmp_path), *opts])
    miou = re.search(r"'mIoU': ([\d.]+)", out)
    assert miou, out[-3000:]
    print(f'{osp.basename(config)} on real ADE20K sizes: mIoU {miou.group(1)}')


# mmengine's AmpOptimWrapper refuses to run without a GPU, and the stock tools (unlike ours) keep
# it: on a CPU a user of the stock tools asks for the plain wrapper, as here
STOCK_CPU_WRAPPER = ['optim_wrapper.type=OptimWrapper']


def test_stock_mmseg_tools_run_pyramid_upernet(python, ade20k_root, tmp_path):
    config = 'configs/visionllama/upernet_visionllama-pyramid-small_8xb2-160k_ade20k-512x512.py'
    opts = ['--cfg-options', *SEG_CONFIGS[config], *seg_opts(ade20k_root, iters=2),
            *STOCK_CPU_WRAPPER]
    tools = stock_tools('mmseg')
    # new interpreters, as from a shell: only the config's custom_imports brings our types in
    run_tool([python, osp.join(tools, 'train.py'), config, '--work-dir', str(tmp_path), *opts],
             fresh=True)
    out = run_tool([python, osp.join(tools, 'test.py'), config, str(tmp_path / 'iter_2.pth'),
                    '--work-dir', str(tmp_path), *opts], fresh=True)
    assert re.search(r'mIoU: [\d.]+', out), out[-3000:]
