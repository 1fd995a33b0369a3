"""tools/train.py --amp on a CPU-only machine: bf16 autocast through mmengine's Runner."""
import re

import pytest

from visionllama_mm.engine.amp import native_bf16
from ..conftest import run_tool
from .test_train_test import QUICKSTART, _digits_opts


def test_amp_trains_in_bf16_on_cpu(tmp_path, python, digits_root):
    """Two iterations of the quickstart with --amp: the log says bf16 and the losses are finite
    (on a CPU without bf16 instructions the wrapper also says that it will be slow)."""
    out = run_tool([python, 'tools/train.py', QUICKSTART, '--amp', '--work-dir', str(tmp_path),
                    *_digits_opts(digits_root, 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                                  'train_dataloader.dataset.indices=128',
                                  'default_hooks.logger.interval=1')])
    assert 'AmpOptimWrapper -> CPUBF16AmpOptimWrapper: training in bf16 autocast on CPU' in out, out
    assert ("loss_scale='dynamic'" in out) and ('no bf16 matmul' in out) == (not native_bf16())
    losses = [float(v) for v in re.findall(r'Epoch\(train\)\s+\[1\]\[\d/2\].*?\s+loss: ([\d.]+)', out)]
    assert len(losses) == 2 and all(0 < v < 10 for v in losses), out[-3000:]
    assert re.search(r'Epoch\(val\) \[1\]\[3/3\]\s+accuracy/top1: [\d.]+', out), out[-3000:]


@pytest.mark.skipif(not native_bf16(), reason='this CPU has no bf16 instructions (AVX512-BF16/AMX): '
                    'bf16 autocast is ~6.5x slower than fp32 here, the 20 epochs would take ~30 min')
def test_quickstart_with_amp_reaches_95_percent(tmp_path, python, digits_root):
    """The quickstart recipe with --amp on half its schedule (10 epochs, the cosine ending at 10;
    bf16 on a CPU runs slower than fp32, and the fp32 test trains the full 20): measured 96.9%."""
    out = run_tool([python, 'tools/train.py', QUICKSTART, '--amp', '--work-dir', str(tmp_path),
                    '--cfg-options', f'train_dataloader.dataset.data_root={digits_root}',
                    f'val_dataloader.dataset.data_root={digits_root}', 'train_cfg.max_epochs=10',
                    'param_scheduler.1.end=10'])
    assert 'training in bf16 autocast on CPU' in out
    accs = [float(a) for a in re.findall(r'Epoch\(val\) \[\d+\]\[3/3\]\s+accuracy/top1: ([\d.]+)', out)]
    assert len(accs) == 2 and accs[-1] >= 95.0, accs
