"""``tools/train.py --compile`` on the ViTamin fine-tuning config: the losses of the first 5
iterations equal eager's (fp32, drop path off), with the config shrunk to a tiny ViTamin on 64x64
digits as in ``test_vitamin_configs.py``.

The classifier draws no random number inside the forward (RandAugment, random erasing and the
crop run in the data pipeline, seeded alike), so the compiled run needs no ``fallback_random``.
This is also the test that inductor compiles the whole ViTamin (stem, MBConv stages with their
shortcut pools, transition, transformer) forward and backward: at ViTamin-S size it crashed
("cannot determine truth value of Relational") before the model traced into one graph.
"""
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import visionllama_mm  # noqa: F401
from ..compile_checks import assert_one_graph_no_recompile, train_losses
from ..conftest import REPO
from .dense_opts import TINY_VITAMIN

FINETUNE = 'configs/vitamin/vitamin-small_clip-pre_8xb256-amp-coslr-50e_in1k.py'


def test_finetune_compiled_equals_eager(python, digits_root, tmp_path):
    """A one-block transformer (compiling costs time per graph node), 5 iterations of 4 digits,
    fp32 (OptimWrapper instead of the recipe's AMP), no EMA hook, a constant lr of 1e-3 (the
    recipe's warm-up starts at 1e-6 / lr of it, which would hide a wrong backward)."""
    opts = [*TINY_VITAMIN, 'model.backbone.arch.num_layers=1', 'model.backbone.img_size=64',
            'model.head.in_channels=32',
            'model.head.num_classes=10', 'model.head.loss.num_classes=10',
            'data_preprocessor.num_classes=10',
            'train_dataloader.dataset.pipeline.1.scale=64', 'model.backbone.drop_path_rate=0.0',
            f'train_dataloader.dataset.data_root={digits_root}',
            'train_dataloader.dataset.type=DigitsDataset', 'train_dataloader.dataset.indices=20',
            'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
            'optim_wrapper.type=OptimWrapper', 'optim_wrapper.optimizer.lr=0.001',
            'param_scheduler.0.start_factor=1.0', 'custom_hooks=[]']
    eager = train_losses(python, FINETUNE, str(tmp_path / 'eager'), *opts)
    compiled = train_losses(python, FINETUNE, str(tmp_path / 'compiled'), *opts, compile=True)
    print('tiny ViTamin fine-tuning, 5 iterations: eager', [f'{v:.6f}' for v in eager],
          '| compiled', [f'{v:.6f}' for v in compiled], '| max rel diff',
          f'{max(abs(a - b) / abs(a) for a, b in zip(eager, compiled)):.1e}')
    assert len(eager) == 5, eager
    assert compiled == pytest.approx(eager, rel=1e-4), (eager, compiled)


def test_finetune_model_compiles_once():
    """The config's classifier (tiny arch, drop path as shipped): its training loss forward, the
    label-smoothing loss included, is one graph without a break, compiled once over three steps
    of fresh images and labels. (The config gives the loss its class count, and the data
    preprocessor makes the one-hot labels: mmpretrain's LabelSmoothLoss would set the count at
    its first call, recompiling the model at the second step, and would one-hot class indices
    itself behind a host-side ``.item()``, a graph break.)"""
    cfg = Config.fromfile(f'{REPO}/{FINETUNE}')
    cfg.model.backbone.update(arch=dict(stem_channels=8, channels=[8, 16], depths=[1, 1],
                                        embed_dims=32, num_layers=2, num_heads=2),
                              img_size=32, init_cfg=None)
    cfg.model.head.in_channels = 32
    cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)  # as the Runner does
    model = MODELS.build(cfg.model).train()
    assert model.head.loss_module.num_classes == 1000 and model.data_preprocessor.to_onehot

    def batch(seed):
        g = torch.Generator().manual_seed(seed)
        images = [torch.randint(0, 256, (3, 32, 32), generator=g, dtype=torch.uint8)
                  for _ in range(2)]
        samples = [DataSample().set_gt_label(int(y))
                   for y in torch.randint(0, 1000, (2, ), generator=g)]
        data = model.data_preprocessor(dict(inputs=images, data_samples=samples), True)
        return data['inputs'], data['data_samples']

    def loss(x, samples):
        return model(x, samples, mode='loss')['loss']

    assert_one_graph_no_recompile(loss, [batch(i) for i in range(3)], backward=True)
