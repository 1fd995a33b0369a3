"""The ImageNet configs (supervised, MAE pre-training, fine-tuning, linear probe), as shipped,
through tools/train.py and tools/test.py, on the digits in ImageNet format. Only the model size,
image size and data (a 16/8-image subset) are changed, with --cfg-options."""
import re

import pytest

from ..conftest import run_tool

# the configs that name an arch by string are shrunk to 'small'; custom-dict archs to 2 blocks
TINY_PLAIN = ['model.backbone.arch._delete_=True', 'model.backbone.arch.embed_dims=64',
              'model.backbone.arch.num_layers=2',
              'model.backbone.arch.num_heads=2', 'model.backbone.arch.feedforward_channels=128']


def _data(root, train=True, test=True, size=64):
    opts = []
    splits = (['train'] if train else []) + (['val', 'test'] if test else [])
    for split in splits:
        opts += [f'{split}_dataloader.dataset.type=DigitsDataset',
                 f'{split}_dataloader.dataset.data_root={root}',
                 f'{split}_dataloader.dataset.indices={16 if split == "train" else 8}',
                 f'{split}_dataloader.batch_size=8', f'{split}_dataloader.num_workers=0',
                 f'{split}_dataloader.persistent_workers=False']
    return opts


CLS = {
    'visionllama-plain-small-p16_8xb256-800e_in1k.py': [
        'model.backbone.arch=small',
        'model.backbone.img_size=64', 'train_dataloader.dataset.pipeline.1.scale=64',
        'val_dataloader.dataset.pipeline.1.scale=64', 'val_dataloader.dataset.pipeline.2.crop_size=64',
        'test_dataloader.dataset.pipeline.1.scale=64', 'test_dataloader.dataset.pipeline.2.crop_size=64',
        'model.head.num_classes=10', 'model.data_preprocessor.num_classes=10'],
    'visionllama-pyramid-small_8xb128-300e_in1k.py': [
        'model.head.num_classes=10',
        'model.data_preprocessor.num_classes=10', 'train_dataloader.dataset.pipeline.1.scale=64',
        'val_dataloader.dataset.pipeline.1.scale=73', 'val_dataloader.dataset.pipeline.2.crop_size=64',
        'test_dataloader.dataset.pipeline.1.scale=73', 'test_dataloader.dataset.pipeline.2.crop_size=64'],
    'visionllama-base-p16_mae-800e-pre_8xb128-coslr-100e_in1k.py': [
        *TINY_PLAIN, 'model.backbone.init_cfg=None', 'model.head.in_channels=64',
        'model.head.num_classes=10', 'model.data_preprocessor.num_classes=10',
        'train_dataloader.dataset.pipeline.1.scale=64',
        'val_dataloader.dataset.pipeline.1.scale=73', 'val_dataloader.dataset.pipeline.2.crop_size=64',
        'test_dataloader.dataset.pipeline.1.scale=73', 'test_dataloader.dataset.pipeline.2.crop_size=64'],
    'visionllama-base-p16_mae-800e-pre_8xb2048-linear-coslr-90e_in1k.py': [
        *TINY_PLAIN, 'model.backbone.init_cfg=None', 'model.backbone.frozen_stages=2',
        'model.neck.input_features=64', 'model.head.in_channels=64', 'model.head.num_classes=10',
        'model.data_preprocessor.num_classes=10', 'train_dataloader.dataset.pipeline.1.scale=64',
        'val_dataloader.dataset.pipeline.1.scale=73', 'val_dataloader.dataset.pipeline.2.crop_size=64',
        'test_dataloader.dataset.pipeline.1.scale=73', 'test_dataloader.dataset.pipeline.2.crop_size=64'],
}


@pytest.mark.parametrize('config', sorted(CLS))
def test_cls_config_trains_and_tests(config, python, digits_root, tmp_path):
    path = f'configs/visionllama/{config}'
    opts = ['--cfg-options', *CLS[config], *_data(digits_root), 'train_cfg.max_epochs=1']
    out = run_tool([python, 'tools/train.py', path, '--work-dir', str(tmp_path), *opts])
    assert re.search(r'Epoch\(train\)\s+\[1\]\[2/2\]', out), out[-3000:]
    out = run_tool([python, 'tools/test.py', path, str(tmp_path / 'epoch_1.pth'),
                    '--work-dir', str(tmp_path), *opts])
    assert re.search(r"'accuracy/top1': [\d.]+", out), out[-3000:]


def test_mae_pretrain_config_trains(python, digits_root, tmp_path):
    path = 'configs/visionllama/mae_visionllama-base-p16_8xb512-amp-coslr-800e_in1k.py'
    opts = ['--cfg-options', 'model.backbone.arch=small', 'model.backbone.img_size=64',
            'model.neck.embed_dim=384',
            'model.neck.num_patches=16', 'model.neck.decoder_embed_dim=32',
            'model.neck.decoder_depth=1', 'model.neck.decoder_num_heads=2',
            'train_dataloader.dataset.pipeline.1.scale=64', *_data(digits_root, test=False),
            'train_cfg.max_epochs=1']
    out = run_tool([python, 'tools/train.py', path, '--work-dir', str(tmp_path), *opts])
    assert re.search(r'Epoch\(train\)\s+\[1\]\[2/2\].*loss: [\d.]+', out), out[-3000:]
