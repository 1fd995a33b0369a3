"""The ConvNeXt V2 configs, as shipped, through tools/train.py and tools/test.py on tiny data (the
dense ones are entries of dense_opts.SEG_CONFIGS / DET_CONFIGS): FCMAE pre-training, fine-tuning,
the pre-training -> fine-tuning chain, and ConvNeXt V2 swapped into a VisionLLaMA UperNet config.
Only the model size, image size and data are changed, with --cfg-options."""
import glob
import os.path as osp
import re

import pytest

from ..conftest import REPO, run_tool
from ..data_fixtures import ADE20K_SIZES, write_ade20k
from .dense_opts import PYRAMID_UPERNET, seg_opts
from .test_cls_configs import _data

TINY_ARCH = ['model.backbone.arch._delete_=True', 'model.backbone.arch.depths=[1,1,1,1]',
             'model.backbone.arch.channels=[8,16,24,32]']
PRETRAIN = sorted(osp.basename(p) for p in glob.glob(osp.join(REPO, 'configs/convnextv2/fcmae_*.py')))
FINETUNE = sorted(osp.basename(p) for p in
                  glob.glob(osp.join(REPO, 'configs/convnextv2/convnextv2-*_fcmae-pre_*_in1k.py')))
# 64x64 crops: 2x2 cells of 32 px for FCMAE (one visible), test resize 73 / crop 64
PRETRAIN_OPTS = [*TINY_ARCH, 'model.neck.in_channels=32', 'model.neck.embed_dims=16',
                 'train_dataloader.dataset.pipeline.1.scale=64']
FINETUNE_OPTS = [*TINY_ARCH, 'model.head.in_channels=32', 'model.head.num_classes=10',
                 'model.data_preprocessor.num_classes=10',
                 'train_dataloader.dataset.pipeline.1.scale=64',
                 'val_dataloader.dataset.pipeline.1.scale=73',
                 'val_dataloader.dataset.pipeline.2.crop_size=64',
                 'test_dataloader.dataset.pipeline.1.scale=73',
                 'test_dataloader.dataset.pipeline.2.crop_size=64']


def test_config_lists_are_complete():
    sizes = ('atto', 'femto', 'pico', 'nano', 'tiny', 'base', 'large', 'huge')
    assert [s for s in sizes if not any(f'convnextv2-{s}_8xb64' in p and '800e' in p
                                        for p in PRETRAIN)] == []
    assert len(PRETRAIN) == 11 and len(FINETUNE) == 8


@pytest.mark.parametrize('config', PRETRAIN)
def test_fcmae_pretrain_config_trains(config, python, digits_root, tmp_path):
    opts = ['--cfg-options', *PRETRAIN_OPTS, *_data(digits_root, test=False),
            'train_cfg.max_epochs=1']
    out = run_tool([python, 'tools/train.py', f'configs/convnextv2/{config}', '--work-dir',
                    str(tmp_path), *opts])
    assert re.search(r'Epoch\(train\)\s+\[1\]\[2/2\].*loss: [\d.]+', out), out[-3000:]


@pytest.mark.parametrize('config', FINETUNE)
def test_finetune_config_trains_and_tests(config, python, digits_root, tmp_path):
    path = f'configs/convnextv2/{config}'
    opts = ['--cfg-options', *FINETUNE_OPTS, 'model.backbone.init_cfg=None',
            *_data(digits_root), 'train_cfg.max_epochs=1']
    out = run_tool([python, 'tools/train.py', path, '--work-dir', str(tmp_path), *opts])
    assert re.search(r'Epoch\(train\)\s+\[1\]\[2/2\]', out), out[-3000:]
    assert 'layer-wise lr decay' in out, out[-3000:]
    out = run_tool([python, 'tools/test.py', path, str(tmp_path / 'epoch_1.pth'),
                    '--work-dir', str(tmp_path), *opts])
    assert re.search(r"'accuracy/top1': [\d.]+", out), out[-3000:]


def test_pretrain_then_finetune_loads_every_encoder_tensor(python, digits_root, tmp_path):
    """The FCMAE checkpoint feeds the fine-tuning config's init_cfg (prefix='backbone.'): only the
    fresh final norm is missing, nothing is unexpected."""
    pre = 'configs/convnextv2/fcmae_convnextv2-atto_8xb64-accum8-coslr-800e_in1k.py'
    run_tool([python, 'tools/train.py', pre, '--work-dir', str(tmp_path / 'pre'), '--cfg-options',
              *PRETRAIN_OPTS, *_data(digits_root, test=False), 'train_cfg.max_epochs=1'])
    ckpt = tmp_path / 'pre' / 'epoch_1.pth'
    ft = 'configs/convnextv2/convnextv2-atto_fcmae-pre_32xb32-amp-coslr-600e_in1k.py'
    out = run_tool([python, 'tools/train.py', ft, '--work-dir', str(tmp_path / 'ft'),
                    '--cfg-options', *FINETUNE_OPTS, f'model.backbone.init_cfg.checkpoint={ckpt}',
                    *_data(digits_root), 'train_cfg.max_epochs=1'])
    assert re.search(r'Epoch\(train\)\s+\[1\]\[2/2\]', out), out[-3000:]
    assert 'load backbone. in model from: ' + str(ckpt) in out, out[-3000:]
    missing = re.search(r'missing keys in source state_dict: (.*)', out)
    assert missing and missing.group(1).strip() == 'norm3.weight, norm3.bias', out[-3000:]
    assert 'unexpected key in source state_dict' not in out, out[-3000:]


@pytest.fixture(scope='module')
def ade20k_real_sizes(tmp_path_factory):
    return write_ade20k(str(tmp_path_factory.mktemp('ade_cnv2') / 'ADEChallengeData2016'),
                        num_train=4, num_val=2, size=ADE20K_SIZES)


def test_convnextv2_swapped_into_visionllama_upernet(python, ade20k_real_sizes, tmp_path):
    """A user's swap with --cfg-options only: ConvNeXt V2 with Pyramid-VisionLLaMA-S's widths
    (64-512) into its UperNet config; real ADE20K sizes (the backbone pads to 32 inside)."""
    config = 'configs/visionllama/upernet_visionllama-pyramid-small_8xb2-160k_ade20k-512x512.py'
    swap = ['model.backbone._delete_=True', 'model.backbone.type=ConvNeXtV2',
            'model.backbone.arch.depths=[1,1,1,1]', 'model.backbone.arch.channels=[64,128,256,512]',
            'model.backbone.out_indices=[0,1,2,3]', 'model.backbone.gap_before_final_norm=False']
    rest = [o for o in PYRAMID_UPERNET if not o.startswith('model.backbone.')]
    opts = ['--cfg-options', *swap, *rest, *seg_opts(ade20k_real_sizes, iters=2)]
    out = run_tool([python, 'tools/train.py', config, '--work-dir', str(tmp_path), *opts])
    assert 'ConvNeXtV2' in out and re.search(r'Iter\(train\) \[2/2\]', out), out[-3000:]
    out = run_tool([python, 'tools/test.py', config, str(tmp_path / 'iter_2.pth'),
                    '--work-dir', str(tmp_path), *opts])
    assert re.search(r"'mIoU': [\d.]+", out), out[-3000:]
