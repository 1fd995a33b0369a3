"""The LVM tokenizer learns on real photographs through tools/train.py: 300 steps of the small
VQGAN (configs/lvm/vqgan/..._sample-photos.py) on 32x32 tiles of scikit-learn's two sample photos
raise the reconstruction PSNR on held-out tiles (unseen tile columns) well above the untrained
tokenizer's (the same config and seed, one step at learning rate 0)."""
import re

from ..conftest import run_tool

CFG = 'configs/lvm/vqgan/vqgan_tiny-f4_1xb16-300it_sample-photos.py'


def _psnr(out):
    found = re.findall(r'psnr/mean: ([\d.]+)', out)
    assert found, out[-3000:]
    return float(found[-1])


def test_vqgan_psnr_rises_on_sample_photos(python, tmp_path):
    data = [f'{s}_dataloader.dataset.data_root={tmp_path / "photos"}'
            for s in ('train', 'val', 'test')]
    untrained = _psnr(run_tool([python, 'tools/train.py', CFG, '--work-dir',
                                str(tmp_path / 'w0'), '--cfg-options', *data,
                                'optim_wrapper.optimizer.lr=0.0', 'train_cfg.max_iters=1',
                                'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1']))
    trained = _psnr(run_tool([python, 'tools/train.py', CFG, '--work-dir', str(tmp_path / 'w'),
                              '--cfg-options', *data]))
    print(f'VQGAN (f4, 256 codes) on sample-photo tiles: val PSNR untrained {untrained:.2f} dB, '
          f'after 300 steps {trained:.2f} dB')
    assert trained > untrained + 6
