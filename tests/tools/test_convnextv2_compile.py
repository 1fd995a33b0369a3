"""``tools/train.py --compile`` on the ConvNeXt V2 configs: the losses of the first 5 iterations
equal eager's (fp32, drop path off), for FCMAE pre-training with the sparse encoder and for
fine-tuning a classifier, both shrunk to a 4-block model with --cfg-options.

FCMAE draws its masks inside the compiled forward; inductor would draw them with its own
generator, so that run compiles with ``fallback_random`` (eager's random numbers). The
fine-tuning run draws no random number inside the forward (RandAugment and random erasing run in
the data pipeline, seeded alike).
"""
import pytest

from ..compile_checks import train_losses

FCMAE = 'configs/convnextv2/fcmae_convnextv2-atto_8xb64-accum8-coslr-800e_in1k.py'
FINETUNE = 'configs/convnextv2/convnextv2-atto_fcmae-pre_32xb32-amp-coslr-600e_in1k.py'
TINY = ['model.backbone.arch._delete_=True', 'model.backbone.arch.depths=[1,1,1,1]',
        'model.backbone.arch.channels=[8,16,24,32]', 'model.backbone.drop_path_rate=0.0']


def _five_iterations(root, batch=2):
    """Digits, 5 iterations of ``batch`` images, one epoch, no workers."""
    return [f'train_dataloader.dataset.data_root={root}',
            'train_dataloader.dataset.type=DigitsDataset',
            f'train_dataloader.dataset.indices={5 * batch}', f'train_dataloader.batch_size={batch}',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'train_cfg.max_epochs=1']


def _assert_equal_losses(python, config, tmp_path, opts, compile, backend='inductor'):
    eager = train_losses(python, config, str(tmp_path / 'eager'), *opts)
    compiled = train_losses(python, config, str(tmp_path / 'compiled'), *opts, compile=compile,
                            backend=backend)
    assert len(eager) == 5, eager
    assert compiled == pytest.approx(eager, rel=1e-4), (eager, compiled)


def test_fcmae_sparse_compiled_equals_eager(python, digits_root, tmp_path):
    """64x64 crops: 2x2 cells, one visible; an optimizer step every iteration at a constant lr
    1e-3 (the recipe's warm-up starts at 1e-9 x lr, which would hide a wrong backward)."""
    opts = [*TINY, 'model.neck.in_channels=32', 'model.neck.embed_dims=16',
            'train_dataloader.dataset.pipeline.1.scale=64', *_five_iterations(digits_root),
            'optim_wrapper.accumulative_counts=1', 'optim_wrapper.optimizer.lr=0.001',
            'param_scheduler.0.start_factor=1.0']
    _assert_equal_losses(python, FCMAE, tmp_path, opts, compile={'fallback_random': True})


def test_finetune_compiled_equals_eager(python, digits_root, tmp_path):
    """32x32 digits, 10 classes, fp32 (OptimWrapper instead of the recipe's AMP), no EMA hook."""
    opts = [*TINY, 'model.backbone.init_cfg=None', 'model.head.in_channels=32',
            'model.head.num_classes=10', 'model.data_preprocessor.num_classes=10',
            'train_dataloader.dataset.pipeline.1.scale=32', *_five_iterations(digits_root),
            'optim_wrapper.type=OptimWrapper', 'custom_hooks=[]']
    # aot_eager: the dense backbone's inductor code is exercised by the FCMAE run above
    _assert_equal_losses(python, FINETUNE, tmp_path, opts, compile=True, backend='aot_eager')
