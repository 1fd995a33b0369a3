"""DiT-LLaMA / SiT-LLaMA under float16 and bfloat16 autocast (CPU autocast runs both).

A tiny denoiser whose residual stream reaches hundreds (as trained models' do) on the 16x16 token
grid of 256 px images at patch 2 trains with finite, fp32-close outputs, losses and gradients. The
numerically delicate parts are computed in float32 on purpose, each checked against float64: the
timestep embedding (angles up to 1000 rad), the 2-D RoPE tables (up to a 32x32 grid), and the
diffusion loss terms (the MSE, the log-variances, the Gaussian KL and the discretized-Gaussian NLL
of the VLB; the flow-matching MSE)."""
import math

import pytest
import torch

import visionllama_mm  # noqa: F401
from visionllama_mm.models.diffusion import DiTLLaMA, FlowMatching, GaussianDiffusion

DTYPES = dict(fp16=torch.float16, bf16=torch.bfloat16)
# (relative error of the per-sample losses, relative norm error of the gradients) against fp32
TOLERANCES = dict(fp16=(2e-3, 1e-2), bf16=(1e-2, 8e-2))  # measured: 2e-4, 6e-4; 9e-4, 3e-2


def _loud_denoiser() -> DiTLLaMA:
    """A 32x32-latent, patch-2 DiT-LLaMA (16x16 tokens) with live adaLN and output layers (zero
    at init) and a patch embedding scaled so the residual stream reaches hundreds."""
    torch.manual_seed(0)
    m = DiTLLaMA(arch=dict(embed_dims=64, depth=2, num_heads=2), patch_size=2, in_channels=4,
                 input_size=32, num_classes=10)
    with torch.no_grad():
        for mod in [b.adaLN_modulation[-1] for b in m.blocks] + [
                m.final_layer.adaLN_modulation[-1]]:
            mod.weight.normal_(0, 0.05)
            mod.bias.normal_(0, 1.)
        m.final_layer.linear.weight.normal_(0, 0.2)
        m.x_embedder.proj.weight.mul_(200.)
    return m


def _run(model, objective, t, dtype):
    """Per-sample losses, the denoiser's output, the last block's largest activation and the
    flattened gradients of one forward+backward under autocast (``dtype=None``: fp32)."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(len(t), 4, 32, 32, generator=g)
    noise = torch.randn(len(t), 4, 32, 32, generator=g)
    y = torch.arange(len(t))
    seen = {}

    def model_fn(x_t, tt):
        seen['out'] = model(x_t, tt, y)
        return seen['out']

    hook = model.blocks[-1].register_forward_hook(
        lambda mod, args, out: seen.__setitem__('absmax', out.abs().max().item()))
    model.zero_grad()
    try:
        with torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            terms = objective.losses(model_fn, x0, t, noise)
    finally:
        hook.remove()
    terms['loss'].mean().backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return {k: v.detach() for k, v in terms.items()}, seen, grads


@pytest.mark.parametrize('precision', ['fp16', 'bf16'])
@pytest.mark.parametrize('objective', ['ddpm', 'flow'])
def test_training_step_is_finite_and_close_to_fp32(objective, precision):
    """Timesteps at both ends (DDPM's t = 0 is the VLB's decoder NLL, t = 999 the noisiest KL)."""
    model = _loud_denoiser()
    if objective == 'ddpm':
        obj, t = GaussianDiffusion(), torch.tensor([0, 1, 500, 999])
    else:
        obj, t = FlowMatching(), torch.tensor([0., 0.3, 0.7, 1.])
    ref, ref_seen, ref_grads = _run(model, obj, t, None)
    terms, seen, grads = _run(model, obj, t, DTYPES[precision])
    assert ref_seen['absmax'] > 100 and seen['absmax'] > 100  # activations of hundreds
    assert seen['out'].dtype == DTYPES[precision]  # autocast did run the denoiser in half
    assert seen['out'].isfinite().all() and grads.isfinite().all()
    loss_tol, grad_tol = TOLERANCES[precision]
    for k, v in terms.items():
        assert v.dtype == torch.float32 and v.isfinite().all(), k
        torch.testing.assert_close(v, ref[k], rtol=loss_tol, atol=0, msg=k)
    assert (grads - ref_grads).norm() / ref_grads.norm() < grad_tol


@pytest.mark.parametrize('precision', ['fp16', 'bf16'])
def test_timestep_embedding_is_float32(precision):
    """The sinusoidal features of t up to 1000 (DDPM) and fractional t (flow matching) agree with
    float64 to 1e-4 under autocast; in half precision the angles would be off by up to a radian."""
    emb = _loud_denoiser().t_embedder
    seen = {}
    emb.mlp[0].register_forward_pre_hook(lambda mod, args: seen.__setitem__('feats', args[0]))
    t = torch.tensor([0., 0.25, 1., 250.5, 999., 1000.])
    with torch.autocast('cpu', dtype=DTYPES[precision]):
        emb(t)
    half = emb.freq_dims // 2
    angles = t.double()[:, None] * torch.exp(
        -math.log(10000) * torch.arange(half, dtype=torch.float64) / half)[None]
    expected = torch.cat([angles.cos(), angles.sin()], dim=-1)
    assert seen['feats'].dtype == torch.float32
    assert (seen['feats'].double() - expected).abs().max() < 1e-4


@pytest.mark.parametrize('precision', ['fp16', 'bf16'])
def test_rope_tables_are_float32(precision):
    """The denoiser's 2-D RoPE tables, made under autocast, at the configs' largest grid (16x16:
    256 px, patch 2) and at 32x32, with XL's head size 72: float32, within 2e-6 of float64."""
    model = DiTLLaMA(arch=dict(embed_dims=144, depth=1, num_heads=2), patch_size=2,
                     in_channels=4, input_size=64, num_classes=10)
    head = 72
    freqs = 10000.**(-torch.arange(0, head, 4, dtype=torch.float64) / head)
    for side in (16, 32):
        with torch.autocast('cpu', dtype=DTYPES[precision]):
            table = model.rope.grid(side, side)
        ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float64),
                                torch.arange(side, dtype=torch.float64), indexing='ij')
        angles = torch.stack([xs.flatten()[:, None] * freqs, ys.flatten()[:, None] * freqs],
                             dim=-1).flatten(-2)
        assert table.cos.dtype == table.sin.dtype == torch.float32
        assert (table.cos.double() - angles.cos()).abs().max() < 2e-6
        assert (table.sin.double() - angles.sin()).abs().max() < 2e-6


@pytest.mark.parametrize('precision', ['fp16', 'bf16'])
def test_loss_terms_are_float32(precision):
    """A half-precision denoiser output (what autocast gives) is upcast before any loss term: the
    losses equal those of the same output in float32, bit for bit, t = 0 (decoder NLL) included."""
    dtype = DTYPES[precision]
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(4, 3, 8, 8, generator=g)
    out = (torch.randn(4, 6, 8, 8, generator=g) * 0.5).to(dtype)
    for obj, t in [(GaussianDiffusion(), torch.tensor([0, 1, 500, 999])),
                   (FlowMatching(), torch.tensor([0., 0.3, 0.7, 1.]))]:
        with torch.autocast('cpu', dtype=dtype):
            half = obj.losses(lambda x_t, tt: out, x0, t, noise)
        full = obj.losses(lambda x_t, tt: out.float(), x0, t, noise)
        for k in full:
            assert half[k].dtype == torch.float32, k
            torch.testing.assert_close(half[k], full[k], rtol=0, atol=0, msg=k)
