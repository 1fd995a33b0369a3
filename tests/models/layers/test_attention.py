"""The shared Attention: fused and GSA layouts, RoPE on q/k in one call, masks and the KV cache."""
import math
from functools import partial

import pytest
import torch
import torch.nn as nn

from visionllama_mm.models.layers import (Attention, KVCache, RotaryEmbedding, SwiGLUFFN,
                                          TransformerBlock, apply_rope)


def _naive(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d)) v written out, (B, h, N, d)."""
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float('-inf'))
    return s.softmax(-1) @ v


def test_fused_attention_equals_naive_rope_attention():
    torch.manual_seed(0)
    attn = Attention(32, 4).eval()
    rope = RotaryEmbedding(8).grid(3, 4)
    x = torch.randn(2, 12, 32)
    q, k, v = attn.qkv(x).view(2, 12, 3, 4, 8).permute(2, 0, 3, 1, 4)
    ref = _naive(apply_rope(q, rope), apply_rope(k, rope), v).transpose(1, 2).reshape(2, 12, 32)
    assert torch.allclose(attn(x, rope=rope), attn.proj(ref), atol=1e-5)


def test_gsa_layout_subsamples_keys_and_rotates_them_with_their_own_table():
    torch.manual_seed(0)
    attn = Attention(16, 2, sr_ratio=2).eval()
    assert set(n.split('.')[0] for n, _ in attn.named_parameters()) == {
        'q', 'kv', 'sr', 'norm', 'proj'}
    rope = RotaryEmbedding(8)
    q_rope, k_rope = rope.grid(4, 6), rope.table(torch.rand(6, 2) * 5)
    x = torch.randn(1, 24, 16)
    out = attn(x, rope=q_rope, hw=(4, 6), key_rope=k_rope)
    q = attn.q(x).view(1, 24, 2, 8).transpose(1, 2)
    kv_in = attn.norm(attn.sr(x.transpose(1, 2).reshape(1, 16, 4, 6)).flatten(2).transpose(1, 2))
    k, v = attn.kv(kv_in).view(1, 6, 2, 2, 8).permute(2, 0, 3, 1, 4)
    ref = _naive(apply_rope(q, q_rope), apply_rope(k, k_rope), v).transpose(1, 2).reshape(1, 24, 16)
    assert torch.allclose(out, attn.proj(ref), atol=1e-5)
    with pytest.raises(ValueError, match='needs the token grid hw'):
        attn(x, rope=q_rope)
    assert set(n for n, _ in Attention(16, 2, sr_ratio=1).named_children()) == {
        'q', 'kv', 'proj', 'proj_drop'}


def test_causal_kv_cache_decoding_equals_full_recompute():
    torch.manual_seed(0)
    attn = Attention(32, 4).eval()
    rope = RotaryEmbedding(8, ndim=1, pairing='half')
    x = torch.randn(2, 9, 32)
    full = attn(x, rope=rope(9), is_causal=True)
    cache = KVCache()
    parts = [attn(x[:, :5], rope=rope(5), is_causal=True, cache=cache)]  # prompt
    parts.append(attn(x[:, 5:7], rope=rope(2, offset=5), is_causal=True, cache=cache))  # 2 at once
    for i in (7, 8):  # one token at a time
        parts.append(attn(x[:, i:i + 1], rope=rope(1, offset=cache.length), is_causal=True,
                          cache=cache))
    assert cache.length == 9
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_attn_mask_is_passed_to_sdpa():
    torch.manual_seed(0)
    attn = Attention(16, 2).eval()
    x = torch.randn(1, 5, 16)
    mask = torch.ones(5, 5, dtype=torch.bool).tril()
    assert torch.allclose(attn(x, attn_mask=mask), attn(x, is_causal=True), atol=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='num_heads must be a positive int'):
        Attention(16, 2.0)
    with pytest.raises(ValueError, match='not divisible'):
        Attention(16, 3)
    with pytest.raises(ValueError, match='sr_ratio'):
        Attention(16, 2, sr_ratio=0)


def test_block_takes_its_parts_and_loads_earlier_layer_scale_keys():
    block = TransformerBlock(16, partial(Attention, num_heads=2),
                             partial(SwiGLUFFN, hidden_dims=32),
                             norm_layer=partial(nn.RMSNorm, eps=1e-6),
                             layer_scale_init_value=1e-4)
    assert isinstance(block.ln1, nn.RMSNorm) and isinstance(block.attn, Attention)
    assert torch.all(block.ls1.weight == 1e-4)
    sd = {k: v.clone() for k, v in block.state_dict().items()}
    old = {k.replace('ls1.weight', 'ls1.gamma').replace('ls2.weight', 'ls2.gamma'): v + 1
           for k, v in sd.items()}  # a checkpoint of this package before LayerScale was reused
    block.load_state_dict(old, strict=True)
    assert torch.allclose(block.ls1.weight, sd['ls1.weight'] + 1)
    x = torch.randn(2, 6, 16)
    assert block(x, hw=(2, 3)).shape == (2, 6, 16)


@pytest.mark.parametrize('ls', [0., 0.5])
@pytest.mark.parametrize('ffn_drop_path', [True, False])
def test_block_residual_is_layer_scale_then_mmcv_drop_path(ls, ffn_drop_path):
    """The residuals are LayerScale -> mmcv DropPath -> add (the FFN one without drop path when
    ffn_drop_path=False), in training and in eval, values and gradients."""
    from mmcv.cnn.bricks import DropPath
    block = TransformerBlock(16, partial(Attention, num_heads=2),
                             partial(SwiGLUFFN, hidden_dims=32), layer_scale_init_value=ls,
                             drop_path_rate=0.4, ffn_drop_path=ffn_drop_path)
    dp = DropPath(0.4)

    def reference(x):
        y = block.attn(block.ln1(x), hw=(2, 3))
        x = x + dp(block.ls1(y))
        y = block.ls2(block.ffn(block.ln2(x)))
        return x + (dp(y) if ffn_drop_path else y)

    x = torch.randn(8, 6, 16, requires_grad=True)
    for training in (True, False):
        block.train(training)
        dp.train(training)
        torch.manual_seed(3)
        out = block(x, hw=(2, 3))
        g_out, = torch.autograd.grad(out.square().sum(), x)
        torch.manual_seed(3)
        ref = reference(x)
        g_ref, = torch.autograd.grad(ref.square().sum(), x)
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(g_out, g_ref)
    with pytest.raises(ValueError, match='drop_path_rate'):
        TransformerBlock(16, partial(Attention, num_heads=2), partial(SwiGLUFFN, hidden_dims=32),
                         drop_path_rate=1.0)


@pytest.mark.parametrize('layout,sr_ratio,window', [
    ('fused', None, 0), ('fused', None, 3), ('fused', 2, 0), ('llama', None, 0)])
def test_blocks_compile_to_one_graph_without_recompiles(layout, sr_ratio, window):
    """A training block of each attention layout (fused q/k RoPE, ViTDet windows padding 4x4 to
    6x6, GSA sub-sampled keys with their own table, LLaMA names with causal masking) is one
    graph, reused over 3 steps; the RoPE tables are built inside the graph, not cached."""
    from ...compile_checks import assert_one_graph_no_recompile
    torch.manual_seed(0)
    rope = RotaryEmbedding(head_dim=8, ndim=2)
    block = TransformerBlock(16, partial(Attention, num_heads=2, sr_ratio=sr_ratio, layout=layout),
                             partial(SwiGLUFFN, hidden_dims=32), layer_scale_init_value=0.1,
                             drop_path_rate=0.1, window_size=window).train()

    def step(x):
        kwargs = dict(rope=rope(3, 3) if window else rope(4, 4))
        if sr_ratio:
            kwargs['key_rope'] = rope(2, 2)
        if layout == 'llama':
            kwargs['is_causal'] = True
        return block(x, hw=(4, 4), **kwargs).square().mean()

    assert_one_graph_no_recompile(step, [(torch.randn(2, 16, 16), ) for _ in range(3)],
                                  backward=True)
    assert rope.cached_keys() == []


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_attention_with_large_logits_is_finite(dtype):
    """Logits up to ~170 (exp() of them overflows fp16, and fp32 too): SDPA's softmax subtracts
    the row maximum and accumulates in float32, so attention under fp16 / bf16 autocast is finite
    and close to fp32. Gradients: fp16 within 5%; bf16's 8-bit mantissa rounds such logits by
    ~0.5, which moves the sharp softmax, so its gradients are only within 30%."""
    torch.manual_seed(0)
    attn = Attention(32, num_heads=2)
    rope = RotaryEmbedding(head_dim=16, ndim=2)(8, 8)
    x = 10 * torch.randn(2, 64, 32, requires_grad=True)

    def run(autocast):
        with torch.autocast('cpu', dtype=dtype, enabled=autocast):
            out = attn(x, rope=rope)
        g, = torch.autograd.grad(out.float().square().mean(), x)
        return out.float(), g

    ref, ref_g = run(False)
    out, g = run(True)
    assert torch.isfinite(out).all() and torch.isfinite(g).all()
    fp16 = dtype == torch.float16
    assert (out - ref).norm() / ref.norm() < (1e-2 if fp16 else 5e-2)
    assert (g - ref_g).norm() / ref_g.norm() < (5e-2 if fp16 else 0.3)
