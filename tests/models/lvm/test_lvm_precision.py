"""LVM under float16 and bfloat16 autocast (CPU autocast takes both), with activations of the
magnitudes trained models reach (hundreds): the decoder's training step and the tokenizer's
training loss stay finite and close to float32, and the numerically delicate parts are float32 on
purpose: RMSNorm statistics, RoPE tables up to the configs' 4096 positions, the logits'
cross-entropy and the VQ nearest-code distances (the tokenizer's ids equal float32's)."""
import pytest
import torch
import torch.nn.functional as F

import visionllama_mm  # noqa: F401
from visionllama_mm.models.backbones import LLaMADecoder
from visionllama_mm.models.layers import RMSNorm, RotaryEmbedding
from visionllama_mm.models.lvm import LVM
from visionllama_mm.models.lvm.vqgan import VQGANAutoEncoder, VQGANTokenizer

HALF = [torch.float16, torch.bfloat16]
CONTEXT = 4096  # the size configs' window (4096 + 1 tokens)
EPS32 = torch.finfo(torch.float32).eps


def _autocast(dtype):
    return torch.autocast('cpu', dtype=dtype or torch.float32, enabled=dtype is not None)


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def _loud_decoder():
    """A tiny decoder scaled so the residual stream reaches hundreds (the down projections'
    outputs ~300), the q/k/v and gate/up projections ~15 and the logits ~20."""
    torch.manual_seed(0)
    m = LLaMADecoder(arch=dict(embed_dims=64, hidden_dims=128, num_layers=2, num_heads=4),
                     vocab_size=300)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 2:
                p.mul_(25)
        m.model.embed_tokens.weight.mul_(100)
    return m


def test_decoder_training_step_finite_and_close_to_fp32():
    m = _loud_decoder()
    ids = torch.randint(0, 300, (1, 513), generator=torch.Generator().manual_seed(0))
    peak = []
    hook = m.model.layers[-1].register_forward_hook(
        lambda mod, inp, out: peak.append(out.detach().abs().max().item()))
    runs = {}
    for dtype in [None, *HALF]:
        m.zero_grad(set_to_none=True)
        with _autocast(dtype):
            logits = m(ids[:, :-1])
            loss = F.cross_entropy(logits.float().flatten(0, 1), ids[0, 1:])
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in m.parameters()])
        assert torch.isfinite(logits).all() and torch.isfinite(grads).all(), dtype
        runs[dtype] = (logits.detach().float(), loss.item(), grads)
    hook.remove()
    assert peak[0] > 300  # the residual stream really is in the hundreds
    (ref_logits, ref_loss, ref_grads) = runs[None]
    for dtype, (logit_tol, grad_tol) in zip(HALF, [(5e-3, 3e-2), (4e-2, 0.15)]):
        logits, loss, grads = runs[dtype]
        print(f'{dtype}: logits rel {_rel(logits, ref_logits):.1e}, loss rel '
              f'{abs(loss - ref_loss) / ref_loss:.1e}, grads rel {_rel(grads, ref_grads):.1e}')
        assert _rel(logits, ref_logits) < logit_tol
        assert loss == pytest.approx(ref_loss, rel=1e-3)
        assert _rel(grads, ref_grads) < grad_tol
        assert F.cosine_similarity(grads, ref_grads, dim=0) > 0.99


@pytest.mark.parametrize('dtype', HALF)
def test_rmsnorm_statistics_in_fp32(dtype):
    """torch's RMSNorm upcasts: a half-precision input of 300s (whose squares overflow float16)
    is normalised as float64 would, up to the output's rounding; under autocast the float32
    residual stream stays float32."""
    norm = RMSNorm(64, eps=1e-6)
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(0)) * 300
    xh = x.to(dtype)
    assert not torch.isfinite(xh.float().to(dtype).pow(2)).all() or dtype == torch.bfloat16
    ref = xh.double() * (xh.double().pow(2).mean(-1, keepdim=True) + 1e-6).rsqrt()
    with torch.autocast('cpu', dtype=dtype):
        out, out32 = norm(xh), norm(x)
    assert out.dtype == dtype and out32.dtype == torch.float32
    assert torch.allclose(out.double(), ref, rtol=2 * torch.finfo(dtype).eps, atol=0)
    assert torch.allclose(out32.double(), x.double() * (x.double().pow(2).mean(
        -1, keepdim=True) + 1e-6).rsqrt(), rtol=1e-6, atol=0)


@pytest.mark.parametrize('dtype', HALF)
def test_rope_tables_fp32_at_the_largest_position(dtype):
    """The 1-D tables of the 300M decoder (head_dim 128) up to position 4095 are float32 under
    autocast and equal float64's within the float32 rounding of the angle; a tensor offset (the
    compiled decoding step's) gives the same rows."""
    rope = RotaryEmbedding(128, ndim=1, pairing='half')
    with torch.autocast('cpu', dtype=dtype):
        table = rope.sequence(CONTEXT)
        last = rope.sequence(1, offset=torch.tensor(CONTEXT - 1))
    assert table.cos.dtype == table.sin.dtype == torch.float32
    freqs = 10000.0**(-torch.arange(0, 128, 2, dtype=torch.float64) / 128)
    angle = torch.arange(CONTEXT, dtype=torch.float64)[:, None] * freqs
    bound = 2 * EPS32 * angle.clamp(min=1)
    assert ((table.cos.double() - angle.cos()).abs() <= bound).all()
    assert ((table.sin.double() - angle.sin()).abs() <= bound).all()
    assert torch.allclose(last.cos, table.cos[-1:], atol=1e-6)
    assert torch.allclose(last.sin, table.sin[-1:], atol=1e-6)


@pytest.mark.parametrize('dtype', HALF)
def test_cross_entropy_of_fp32_logits(dtype):
    """Under autocast the head's logits are half precision; the loss upcasts them and is the
    float64 cross-entropy of those logits."""
    torch.manual_seed(0)
    m = LVM(backbone=dict(type='LLaMADecoder', vocab_size=300,
                          arch=dict(embed_dims=32, hidden_dims=64, num_layers=1, num_heads=2)),
            num_codes=256, bos_id=256, eos_id=257, pad_id=258)
    with torch.no_grad():
        m.backbone.lm_head.weight.mul_(500)  # logits of tens
    ids = torch.randint(0, 256, (2, 33), generator=torch.Generator().manual_seed(0))
    with torch.autocast('cpu', dtype=dtype):
        loss = m(ids, mode='loss')['loss']
        logits = m.backbone(ids[:, :-1])
    assert logits.dtype == dtype and logits.abs().max() > 10
    assert loss.dtype == torch.float32
    ref = F.cross_entropy(logits.double().flatten(0, 1), ids[:, 1:].flatten())
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)


def _loud_tokenizer():
    """A tiny VQGAN (f 4, 256 codes of 16 channels) whose latents reach hundreds, its codebook
    latents of other images (the norms of a trained codebook)."""
    torch.manual_seed(0)
    tok = VQGANTokenizer(arch=dict(hidden_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1,
                                   z_channels=16, quantized_embed_dim=16, num_embeddings=256,
                                   resolution=64))
    with torch.no_grad():
        tok.encoder.conv_in.weight.mul_(30)
        tok.encoder.conv_out.weight.mul_(300)
        z = tok.quant_conv(tok.encoder(torch.rand(4, 3, 64, 64)))
        z = z.permute(0, 2, 3, 1).reshape(-1, 16)
        tok.quantize.embedding.weight.copy_(z[torch.randperm(len(z))[:256]])
    return tok


def test_vqgan_code_ids_under_autocast_equal_fp32():
    """4096 tokens (16 images of 16 x 16 codes): the ids under float16 and bfloat16 autocast
    equal float32's; the distances alone are float32 too (latents of hundreds: their squared
    norms overflow float16)."""
    tok = _loud_tokenizer()
    images = torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ref = tok.encode(images)
    z = tok.quant_conv(tok.encoder(images)).detach()
    assert ref.numel() == 4096 and z.abs().max() > 100 and z.pow(2).sum(1).max() > 65504
    for dtype in HALF:
        with torch.autocast('cpu', dtype=dtype):
            ids = tok.encode(images)
            ids_of_z = tok.quantize.codes(z)
        agree = (ids == ref).float().mean().item()
        print(f'{dtype}: {agree:.2%} of 4096 ids equal float32\'s')
        assert agree >= 0.999
        assert torch.equal(ids_of_z, ref)


def test_vqgan_training_loss_finite_and_close_to_fp32():
    torch.manual_seed(0)
    ae = VQGANAutoEncoder(tokenizer=dict(
        type='VQGANTokenizer', arch=dict(hidden_channels=32, channel_mult=(1, 1, 2),
                                         num_res_blocks=1, z_channels=16, quantized_embed_dim=16,
                                         num_embeddings=32, resolution=16))).train()
    with torch.no_grad():
        ae.tokenizer.encoder.conv_in.weight.mul_(30)  # activations of hundreds
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    runs = {}
    for dtype in [None, *HALF]:
        ae.zero_grad(set_to_none=True)
        with _autocast(dtype):
            losses = ae(x, mode='loss')
        loss = sum(losses.values())
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in ae.parameters() if p.grad is not None])
        assert torch.isfinite(loss) and torch.isfinite(grads).all(), dtype
        runs[dtype] = (loss.item(), grads)
    for dtype in HALF:
        print(f'{dtype}: loss {runs[dtype][0]:.5f} vs {runs[None][0]:.5f}, grads rel '
              f'{_rel(runs[dtype][1], runs[None][1]):.1e}')
        assert runs[dtype][0] == pytest.approx(runs[None][0], rel=2e-2)
        assert F.cosine_similarity(runs[dtype][1], runs[None][1], dim=0) > 0.99
