"""``tools/train.py --compile`` trains the toy LVM config with the same losses as eager.

The config of the LVM learning test (``lvm_llama-mini_...digits-counting``: a 0.64M-parameter
decoder, 16 windows of 161 + 1 tokens per step) on a shard of random codes written with
``write_token_shard``; no tokenizer is needed for pre-tokenized windows. The LVM forward draws no
random numbers (no dropout), so the compiled run needs no ``fallback_random``.
"""
import numpy as np
import pytest

from ..compile_checks import train_losses

LVM_CFG = 'configs/lvm/lvm_llama-mini_1xb16-400it_digits-counting.py'


@pytest.fixture(scope='module')
def shard(tmp_path_factory):
    from visionllama_mm.datasets import write_token_shard
    rng = np.random.default_rng(0)
    root = str(tmp_path_factory.mktemp('lvm_compile') / 'tokens')
    # 100 sentences of ten 16-code images: 16,200 tokens, 100 windows of 162
    write_token_shard(root, (rng.integers(0, 32, 160) for _ in range(100)), bos=32, eos=33,
                      pad=34, vocab_size=132, codebook=32, tokens_per_image=16)
    return root


def test_compiled_losses_equal_eager(shard, python, tmp_path):
    opts = [f'train_dataloader.dataset.data_root={shard}', 'model.tokenizer=None',
            'train_cfg.max_iters=5', 'default_hooks.checkpoint.interval=5']
    eager = train_losses(python, LVM_CFG, str(tmp_path / 'e'), *opts)
    comp = train_losses(python, LVM_CFG, str(tmp_path / 'c'), *opts, compile=True)
    print('LVM mini, 5 iterations: eager', [f'{v:.6f}' for v in eager], '| compiled',
          [f'{v:.6f}' for v in comp], '| max rel diff',
          f'{max(abs(a - b) / abs(a) for a, b in zip(eager, comp)):.1e}')
    assert len(eager) == 5 and comp == pytest.approx(eager, rel=1e-4)
