"""FCMAE learns on real images, through tools/train.py with the shipped atto configs (shrunk by
--cfg-options): the masked-cell loss falls well below its start; then the fine-tuning config
loads that checkpoint and learns the digits, as training from scratch does for the same steps.
Which of the two is ahead is printed, not asserted: the pre-training data are two photographs,
far from handwritten digits, and scratch is ahead at every seed measured."""
import os.path as osp
import re

import pytest

from ..conftest import run_tool
from ..data_fixtures import write_photo_crops

PRE = 'configs/convnextv2/fcmae_convnextv2-atto_8xb64-accum8-coslr-800e_in1k.py'
FT = 'configs/convnextv2/convnextv2-atto_fcmae-pre_32xb32-amp-coslr-600e_in1k.py'
PRE_EPOCHS = 75  # 64 crops / batch 16 = 4 iterations per epoch: 300 steps


def _loader(loader, root, batch, **dataset):
    return [f'{loader}_dataloader.dataset.data_root={root}',
            f'{loader}_dataloader.batch_size={batch}', f'{loader}_dataloader.num_workers=0',
            f'{loader}_dataloader.persistent_workers=False',
            *(f'{loader}_dataloader.dataset.{k}={v}' for k, v in dataset.items())]


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory, python):
    """300 FCMAE steps of ConvNeXt V2-Atto on 96x96 crops of the sample photographs (3 of 9
    cells visible); returns (work dir, tools/train.py log)."""
    photos = write_photo_crops(str(tmp_path_factory.mktemp('photos')), num=64, size=96)
    work = str(tmp_path_factory.mktemp('fcmae'))
    opts = ['--cfg-options', *_loader('train', photos, 16),
            'train_dataloader.dataset.pipeline.1.scale=96',
            'optim_wrapper.accumulative_counts=1', 'optim_wrapper.optimizer.lr=0.001',
            'param_scheduler.0.end=5', 'param_scheduler.1.begin=5',
            f'param_scheduler.1.end={PRE_EPOCHS}', f'param_scheduler.1.T_max={PRE_EPOCHS - 5}',
            f'train_cfg.max_epochs={PRE_EPOCHS}', 'default_hooks.logger.interval=20',
            f'default_hooks.checkpoint.interval={PRE_EPOCHS}', 'randomness.seed=0']
    out = run_tool([python, 'tools/train.py', PRE, '--work-dir', work, *opts])
    return work, out


def test_fcmae_masked_cell_loss_falls(pretrained):
    work, out = pretrained
    losses = [float(v) for v in re.findall(r'Epoch\(train\).*?\sloss: ([\d.]+)', out)]
    assert len(losses) >= 10, out[-3000:]
    first, last = losses[0], sum(losses[-3:]) / 3
    print(f'FCMAE atto, 300 steps: masked-cell loss {first:.3f} (first 20 steps) -> {last:.3f} '
          f'(last 60)')
    assert last < 0.7 * first, losses
    assert osp.exists(osp.join(work, f'epoch_{PRE_EPOCHS}.pth'))


def _finetune(python, digits_root, work, init):
    size = ['train_dataloader.dataset.pipeline.1.scale=32',
            'val_dataloader.dataset.pipeline.1.scale=32',
            'val_dataloader.dataset.pipeline.2.crop_size=32',
            'test_dataloader.dataset.pipeline.1.scale=32',
            'test_dataloader.dataset.pipeline.2.crop_size=32']
    data = []
    for split in ('train', 'val', 'test'):
        data += _loader(split, digits_root, 32, type='DigitsDataset',
                        split='train' if split == 'train' else 'val',
                        **({'indices': 960} if split == 'train' else {}))
    opts = ['--cfg-options', *data, *size, init,
            'model.head.num_classes=10', 'model.data_preprocessor.num_classes=10',
            'optim_wrapper.type=OptimWrapper', 'custom_hooks=[]',  # EMA 0.9999 is too slow here
            'param_scheduler.0.end=8', 'train_cfg.max_epochs=8', 'train_cfg.val_interval=8',
            'default_hooks.checkpoint.interval=8', 'randomness.seed=0']
    out = run_tool([python, 'tools/train.py', FT, '--work-dir', work, *opts])
    acc = re.findall(r'Epoch\(val\) \[8\]\[\d+/\d+\]\s+accuracy/top1: ([\d.]+)', out)
    assert acc, out[-3000:]
    return float(acc[-1]), out


def test_finetune_from_the_fcmae_checkpoint_and_from_scratch_both_learn_digits(
        pretrained, python, digits_root, tmp_path):
    """The fine-tuning config loads the FCMAE checkpoint into its backbone (every tensor but the
    final norm, which the encoder does not have) and learns the digits; so does the same recipe
    from scratch. Top-1 measured (10 classes: chance is 10%): 47.9% from FCMAE vs 62.4% from
    scratch at seed 0, 44.3% vs 74.4% at seed 1 (both runs and the pre-training seeded alike), so
    a "fine-tuned beats scratch" bar would assert the opposite of what happens; the two numbers
    are printed."""
    work, _ = pretrained
    ckpt = osp.join(work, f'epoch_{PRE_EPOCHS}.pth')
    pre, out = _finetune(python, digits_root, str(tmp_path / 'pre'),
                         f'model.backbone.init_cfg.checkpoint={ckpt}')
    assert f'load backbone. in model from: {ckpt}' in out, out[-3000:]
    assert ('loading the matching tensors only (136 of 138):\nmissing keys in source state_dict: '
            'norm3.weight, norm3.bias\n') in out, out[-3000:]
    scratch, out = _finetune(python, digits_root, str(tmp_path / 'scratch'),
                             'model.backbone.init_cfg=None')
    assert 'load backbone. in model from' not in out
    print(f'digits, 240 steps of fine-tuning: top-1 {pre:.2f} from FCMAE (photos) vs '
          f'{scratch:.2f} from scratch')
    assert pre > 30 and scratch > 30
    # mmpretrain's ImageClassificationInferencer and FeatureExtractor on the trained ConvNeXt V2
    # (the config tools/train.py wrote, the checkpoint it saved), over all 359 held-out digits:
    # the inferencer reproduces the evaluated top-1 (62.40 = 62.40 at seed 0), and the features'
    # nearest class mean (5 training digits a class) is far above chance
    from .test_inferencers import check_trained_digits_classifier
    top1, _ = check_trained_digits_classifier(
        osp.join(tmp_path, 'scratch', osp.basename(FT)), osp.join(tmp_path, 'scratch', 'epoch_8.pth'),
        digits_root, per_class=None, min_top1=30.0)
    assert abs(top1 - scratch) <= 100 / 359 + 1e-3, (top1, scratch)
