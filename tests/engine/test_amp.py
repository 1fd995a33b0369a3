"""bf16 autocast training on the CPU: CPUBF16AmpOptimWrapper and what --amp becomes without CUDA."""
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import OPTIM_WRAPPERS

import visionllama_mm  # noqa: F401
from visionllama_mm.engine.amp import CPUBF16AmpOptimWrapper, native_bf16
from visionllama_mm.engine.launch import adapt_to_device


def _wrapper(model, **kwargs):
    return CPUBF16AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)


def test_context_runs_matmuls_in_bf16_and_keeps_fp32_grads():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    wrapper = _wrapper(model, clip_grad=dict(max_norm=1.0))
    x = torch.randn(5, 8)
    with wrapper.optim_context(model):
        hidden = model[0](x)
        out = model[2](model[1](hidden))
        loss = nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 3, 0]))
    assert hidden.dtype == out.dtype == torch.bfloat16
    assert loss.dtype == torch.float32  # autocast keeps losses in fp32
    ref = model[2](model[1](model[0](x)))  # outside the context: fp32 again
    assert ref.dtype == torch.float32
    assert (out.float() - ref).abs().max() < 0.05  # bf16 has 8 mantissa bits
    before = [p.detach().clone() for p in model.parameters()]
    wrapper.backward(loss)
    for p in model.parameters():
        assert p.dtype == p.grad.dtype == torch.float32
    wrapper.step()
    for p, b in zip(model.parameters(), before):
        assert not torch.equal(p, b)  # the step was taken (no loss scaler to skip it)


def test_registered_and_built_from_a_config():
    model = nn.Linear(2, 2)
    wrapper = OPTIM_WRAPPERS.build(dict(type='CPUBF16AmpOptimWrapper',
                                        optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    assert isinstance(wrapper, CPUBF16AmpOptimWrapper)


def test_gpu_amp_checkpoint_state_loads_without_its_loss_scaler():
    model = nn.Linear(2, 2)
    wrapper = _wrapper(model)
    state = dict(wrapper.state_dict(), loss_scaler={'scale': 65536.0})
    wrapper.load_state_dict(state)
    assert wrapper.optimizer.param_groups[0]['lr'] == 0.1


def test_amp_on_cpu_becomes_bf16_and_logs_what_is_dropped(tmp_path):
    log = tmp_path / 'log.txt'
    MMLogger.get_instance('test_amp_on_cpu', log_file=str(log))  # becomes the current logger
    cfg = Config(dict(default_scope='mmpretrain', optim_wrapper=dict(
        type='AmpOptimWrapper', loss_scale='dynamic', dtype='float16',
        optimizer=dict(type='AdamW', lr=1e-3), clip_grad=dict(max_norm=1.0))))
    adapt_to_device(cfg, cuda=False)
    assert cfg.optim_wrapper == dict(type='CPUBF16AmpOptimWrapper',
                                     optimizer=dict(type='AdamW', lr=1e-3),
                                     clip_grad=dict(max_norm=1.0))
    out = log.read_text()
    assert 'training in bf16 autocast on CPU' in out
    assert "loss_scale='dynamic'" in out and "dtype='float16'" in out


def test_amp_with_cuda_stays_stock():
    cfg = Config(dict(default_scope='mmpretrain', optim_wrapper=dict(
        type='AmpOptimWrapper', loss_scale='dynamic', optimizer=dict(type='AdamW', lr=1e-3))))
    adapt_to_device(cfg, cuda=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.loss_scale == 'dynamic'


def test_warns_when_the_cpu_has_no_native_bf16(tmp_path):
    log = tmp_path / 'log.txt'
    MMLogger.get_instance('test_amp_native_bf16', log_file=str(log))
    _wrapper(nn.Linear(2, 2))
    assert ('no bf16 matmul instructions' in log.read_text()) == (not native_bf16())
