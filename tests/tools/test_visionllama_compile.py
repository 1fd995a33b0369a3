"""``tools/train.py --compile`` on VisionLLaMA configs (plain, pyramid, MAE): the losses of the
first 5 iterations equal eager's (fp32, drop path off).

The quickstart compiles with inductor (generated kernels); the pyramid and MAE configs with
``aot_eager`` (dynamo and AOT autograd, eager kernels), which checks the same traced forward and
backward for a fraction of the compile time. Their graphs are counted in
``tests/models/backbones`` and ``tests/models/selfsup``.

Inductor draws random numbers with its own generator, so the runs compile with
``fallback_random`` where the compiled forward draws any (MAE's per-sample masks); batch
augmentation runs in the data preprocessor, outside the compiled forward, and is seeded alike.
"""
import glob

import pytest

from ..compile_checks import train_losses
from .test_train_test import QUICKSTART

TINY_PYRAMID = ['model.backbone.arch._delete_=True', 'model.backbone.arch.embed_dims=[16,32,32,64]',
                'model.backbone.arch.depths=[1,1,1,1]', 'model.backbone.arch.num_heads=[1,2,2,4]',
                'model.backbone.arch.ffn_dims=[32,64,64,128]', 'model.head.in_channels=64']


# the ImageNet configs train with AMP (bf16 on a CPU); the comparison is made in fp32
FP32_ADAMW = ['optim_wrapper._delete_=True', 'optim_wrapper.type=OptimWrapper',
              'optim_wrapper.optimizer.type=AdamW', 'optim_wrapper.optimizer.lr=0.001']


def _five_iterations(root, batch=4):
    """Digits, 5 iterations of ``batch`` images, one epoch, no workers."""
    return [f'train_dataloader.dataset.data_root={root}', 'train_dataloader.dataset.type=DigitsDataset',
            f'train_dataloader.dataset.indices={5 * batch}', f'train_dataloader.batch_size={batch}',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'train_cfg.max_epochs=1']


def _assert_equal_losses(python, config, tmp_path, opts, random_in_forward=False,
                         backend='inductor'):
    eager = train_losses(python, config, str(tmp_path / 'eager'), *opts)
    log = open(glob.glob(str(tmp_path / 'eager' / '*' / '*.log'))[0]).read()
    assert 'AmpOptimWrapper' not in log  # fp32
    compiled = train_losses(python, config, str(tmp_path / 'compiled'), *opts,
                            compile={'fallback_random': True} if random_in_forward else True,
                            backend=backend)
    assert len(eager) == 5, eager
    assert compiled == pytest.approx(eager, rel=1e-4), (eager, compiled)


def test_plain_quickstart_compiled_equals_eager(python, digits_root, tmp_path):
    _assert_equal_losses(python, QUICKSTART, tmp_path,
                         [*_five_iterations(digits_root, batch=16), 'model.backbone.drop_path_rate=0.0'])


def test_pyramid_compiled_equals_eager(python, digits_root, tmp_path):
    opts = [*TINY_PYRAMID, *FP32_ADAMW, 'model.backbone.drop_path_rate=0.0', 'model.head.num_classes=10',
            'model.data_preprocessor.num_classes=10', 'train_dataloader.dataset.pipeline.1.scale=64',
            *_five_iterations(digits_root)]
    _assert_equal_losses(python, 'configs/visionllama/visionllama-pyramid-small_8xb128-300e_in1k.py',
                         tmp_path, opts, backend='aot_eager')


def test_mae_compiled_equals_eager(python, digits_root, tmp_path):
    opts = ['model.backbone.arch._delete_=True', 'model.backbone.arch.embed_dims=64',
            'model.backbone.arch.num_layers=2', 'model.backbone.arch.num_heads=2',
            'model.backbone.arch.feedforward_channels=128', 'model.backbone.img_size=64',
            'model.neck.embed_dim=64', 'model.neck.num_patches=16',
            'model.neck.decoder_embed_dim=32', 'model.neck.decoder_depth=1',
            'model.neck.decoder_num_heads=2', 'train_dataloader.dataset.pipeline.1.scale=64',
            *FP32_ADAMW, *_five_iterations(digits_root)]
    _assert_equal_losses(python, 'configs/visionllama/mae_visionllama-base-p16_8xb512-amp-coslr-800e_in1k.py',
                         tmp_path, opts, random_in_forward=True, backend='aot_eager')
