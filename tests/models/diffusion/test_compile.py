"""DiT-LLaMA / SiT-LLaMA under ``torch.compile``: no graph break in the denoiser's training forward
nor in the whole training loss (DDPM with learned sigma and the VLB term; flow matching), no
recompilation over fixed-shape steps, and sampling loops whose denoiser calls share one compiled
graph (the frame count does not grow with the steps) and give eager's samples.

The graph-break and recompile checks use ``torch._dynamo.explain`` and a counting backend (no
inductor); one sampling test compiles with inductor."""
import pytest
import torch
from mmpretrain.structures import DataSample
from torch._dynamo.testing import CompileCounter, CompileCounterWithBackend

import visionllama_mm  # noqa: F401
from visionllama_mm.models.diffusion import ClassConditionalDiffusion, DiTLLaMA
from ...compile_checks import assert_no_graph_breaks, compiled_frames

OBJECTIVES = dict(
    ddpm=dict(type='GaussianDiffusion', learn_sigma=True, sampling_steps=4),
    sde=dict(type='FlowMatching', sampler=dict(mode='sde', num_steps=4)),
    ode=dict(type='FlowMatching', sampler=dict(mode='ode', method='euler', num_steps=4)))


def _model(objective: str, cfg_scale: float = 1.0) -> ClassConditionalDiffusion:
    torch.manual_seed(0)
    model = ClassConditionalDiffusion(
        denoiser=dict(type='DiTLLaMA', arch=dict(embed_dims=32, depth=1, num_heads=2),
                      patch_size=2, in_channels=3, input_size=8, num_classes=10),
        objective=OBJECTIVES[objective], cfg_scale=cfg_scale, guided_channels=None)
    for p in model.denoiser.parameters():  # the official init zeroes the output layers
        p.data.add_(torch.randn_like(p) * 0.05)
    return model


def _batch(seed: int, batch: int = 4):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (batch, ), generator=g)
    return (torch.randn(batch, 3, 8, 8, generator=g),
            [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(int(y))
             for i, y in enumerate(labels)])


def test_denoiser_training_forward_has_no_graph_break():
    m = DiTLLaMA(arch=dict(embed_dims=32, depth=2, num_heads=2), patch_size=2, in_channels=4,
                 input_size=8, num_classes=10).train()
    assert_no_graph_breaks(lambda x, t, y: m(x, t, y).float().square().mean(),
                           torch.randn(2, 4, 8, 8), torch.randint(0, 1000, (2, )),
                           torch.randint(0, 10, (2, )))


@pytest.mark.parametrize('objective', ['ddpm', 'sde'])
def test_training_loss_has_no_graph_break(objective):
    """The whole ``mode='loss'`` forward: labels from the data samples, the random timesteps,
    noise and label dropout, the denoiser, and the loss terms (DDPM: mse + the VLB with its
    Gaussian KL and discretized-Gaussian NLL)."""
    model = _model(objective).train()
    inputs, samples = _batch(0)
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == ({'loss', 'mse', 'vb'} if objective == 'ddpm' else {'loss'})
    assert_no_graph_breaks(lambda x: model(x, samples, mode='loss')['loss'], inputs)


@pytest.mark.parametrize('objective', ['ddpm', 'sde'])
def test_training_steps_do_not_recompile(objective):
    """Three fixed-shape steps (new images, labels, timesteps, noise) with backward: one frame,
    compiled at the first step (the DDPM tables are not cached per device inside the graph)."""
    model = _model(objective).train()
    batches = [_batch(seed) for seed in range(3)]
    frames = compiled_frames(lambda x, s: model(x, s, mode='loss')['loss'], batches,
                             backward=True)
    assert frames == [1, 1, 1]


@pytest.mark.parametrize('objective', ['sde', 'ode'])
def test_sampling_compiles_the_denoiser_once(objective):
    """``model.compile()`` (mmengine's ``compile=True``): the sampling loop runs in Python and all
    its guided denoiser calls (batch 2B) share one graph, so the frames do not grow with the
    steps (SiT's SDE: 3 stochastic steps and the mean step; Euler ODE: 3 steps); a new batch size
    adds one, and the loss forward is one more. DDPM: :func:`test_compiled_samples_equal_eager`."""
    model = _model(objective, cfg_scale=2.0).eval()
    counter = CompileCounter()
    model.compile(backend=counter)
    try:
        _, samples = _batch(0)
        calls = []
        model.denoiser.register_forward_pre_hook(lambda *_: calls.append(counter.frame_count))
        model(torch.zeros(4), samples, mode='tensor')
        assert len(calls) >= 3 and counter.frame_count == 1
        model(torch.zeros(4), samples[:2], mode='tensor')     # another batch size
        frames_after_resize = counter.frame_count
        model(torch.zeros(4), samples[:2], mode='tensor')
        assert counter.frame_count == frames_after_resize <= 2
        model.train()(*_batch(1), mode='loss')['loss'].backward()
        assert counter.frame_count == frames_after_resize + 1
    finally:
        torch._dynamo.reset()


def test_compiled_samples_equal_eager():
    """Guided DDPM sampling (4 steps) with the denoiser compiled by inductor: one compilation for
    all the steps of two runs, and the samples of eager's seed within 1e-4 of eager's."""
    model = _model('ddpm', cfg_scale=2.0).eval()
    _, samples = _batch(0)
    eager = model(torch.zeros(4), samples, mode='tensor')
    counter = CompileCounterWithBackend('inductor')
    model.compile(backend=counter)
    try:
        compiled = model(torch.zeros(4), samples, mode='tensor')
        assert counter.frame_count == 1
        again = model(torch.zeros(4), samples, mode='tensor')
        assert counter.frame_count == 1
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(again, compiled, rtol=0, atol=0)
