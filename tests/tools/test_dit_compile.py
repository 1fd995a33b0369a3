"""``tools/train.py --compile`` trains the digits toys of DiT-LLaMA (DDPM, learned sigma, mse + VLB)
and SiT-LLaMA (flow matching) with eager's losses: the first 5 iterations agree to 1e-4 relative.

The timesteps, the noise and the label dropout are drawn inside the compiled forward; inductor
draws random numbers with its own generator unless ``fallback_random`` is set, so the compiled runs
use ``compile.options.fallback_random=True`` to draw eager's numbers. The toys run with one block
and batch 16 to keep the compilation short; DiT compiles with inductor, SiT (the same denoiser) with
``aot_eager`` (dynamo and AOT autograd with eager kernels: the same traced forward and backward, a
fraction of the compile time)."""
import os.path as osp

import pytest

from ..compile_checks import train_losses
from ..conftest import REPO

CONFIGS = dict(
    dit='configs/dit_llama/dit_llama-tiny-p2_1xb64-2000it_digits-8px.py',
    sit='configs/dit_llama/sit_llama-tiny-p4_1xb64-1250it_digits-16px.py')


@pytest.mark.parametrize('family', ['dit', 'sit'])
def test_compiled_training_matches_eager(python, tmp_path, family):
    opts = (f'train_dataloader.dataset.data_root={tmp_path / "digits"}',
            'train_dataloader.batch_size=16', 'model.denoiser.arch.num_layers=1',
            'train_cfg.max_iters=5', 'default_hooks.checkpoint.interval=100',
            'default_hooks.checkpoint.save_last=False')
    config = osp.join(REPO, CONFIGS[family])
    eager = train_losses(python, config, str(tmp_path / 'eager'), *opts)
    compiled = train_losses(python, config, str(tmp_path / 'compiled'), *opts,
                            compile={'fallback_random': True},
                            backend='inductor' if family == 'dit' else 'aot_eager')
    assert len(eager) == 5
    assert compiled == pytest.approx(eager, rel=1e-4)
