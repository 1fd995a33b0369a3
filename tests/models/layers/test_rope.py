"""2D RoPE / AS2DRoPE: the official frequency layout, relativity, scaling and caching."""
import math

import pytest
import torch

from visionllama_mm.models.layers import RotaryEmbedding, apply_rope, grid_positions


def test_frequency_layout_matches_spec():
    rope = RotaryEmbedding(head_dim=8)  # d_r = 8 -> K = 2 frequencies
    assert torch.allclose(rope.freqs, torch.tensor([1.0, 10000**(-4 / 8)]))
    # token (x=3, y=5): angles [x w0, y w0, x w1, y w1]
    ang = rope.angles(torch.tensor([[3., 5.]]))
    w1 = 10000**(-0.5)
    assert torch.allclose(ang, torch.tensor([[3., 5., 3 * w1, 5 * w1]]))


def test_interleaved_pairs_rotate_like_complex_numbers():
    rope = RotaryEmbedding(head_dim=4)
    cos, sin = rope.table(torch.tensor([[2., 1.]]))  # angles [2, 1]
    x = torch.tensor([[[[1., 0., 0., 1.]]]])  # (1, 1, 1, 4): pairs 1+0j, 0+1j
    out = apply_rope(x, (cos, sin))
    z0 = complex(1, 0) * complex(math.cos(2), math.sin(2))
    z1 = complex(0, 1) * complex(math.cos(1), math.sin(1))
    assert torch.allclose(out.flatten(), torch.tensor([z0.real, z0.imag, z1.real, z1.imag]),
                          atol=1e-6)


def test_raster_positions_non_square():
    pos = grid_positions(2, 3)
    assert pos.tolist() == [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]]


def test_scores_depend_only_on_relative_offset():
    torch.manual_seed(0)
    rope = RotaryEmbedding(head_dim=16)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(p, r):
        cq, sq = rope.table(torch.tensor([p], dtype=torch.float32))
        ck, sk = rope.table(torch.tensor([r], dtype=torch.float32))
        return (apply_rope(q, (cq, sq)) * apply_rope(k, (ck, sk))).sum()

    base = score((1., 2.), (4., 7.))
    for shift in [(3., -1.), (10., 5.), (-2.5, 0.5)]:
        shifted = score((1. + shift[0], 2. + shift[1]), (4. + shift[0], 7. + shift[1]))
        assert torch.allclose(base, shifted, atol=1e-4)
    assert not torch.allclose(base, score((1., 2.), (5., 7.)), atol=1e-3)


def test_as2drope_at_anchor_equals_plain_and_interpolates_elsewhere():
    plain = RotaryEmbedding(head_dim=32)
    scaled = RotaryEmbedding(head_dim=32, anchor=(14, 14))
    for a, b in zip(plain(14, 14), scaled(14, 14)):
        assert torch.equal(a, b)
    # at 28x28 the positions are halved: token (x=2, y=4) sits where (1, 2) sat at the anchor
    cos28, _ = scaled(28, 28)
    cos14, _ = plain(14, 14)
    assert torch.allclose(cos28[4 * 28 + 2], cos14[2 * 14 + 1], atol=1e-6)


def test_as2drope_scales_each_axis_separately():
    scaled = RotaryEmbedding(head_dim=8, anchor=(4, 8))
    assert scaled.scale(8, 16) == (0.5, 0.5)
    assert scaled.scale(4, 16) == (0.5, 1.0)  # (s_x, s_y)
    cos, sin = scaled(4, 16)
    expected = scaled.table(grid_positions(4, 16) * torch.tensor([0.5, 1.0]))
    assert torch.allclose(cos, expected[0]) and torch.allclose(sin, expected[1])


def test_table_is_cached_per_shape():
    rope = RotaryEmbedding(head_dim=8)
    a = rope(3, 5)
    assert rope(3, 5)[0] is a[0]
    assert rope(5, 3)[0] is not a[0]


def test_partial_rotation_leaves_tail_channels():
    rope = RotaryEmbedding(head_dim=16, ratio=0.5)
    assert rope.rot_dim == 8
    x = torch.randn(2, 3, 6, 16)
    out = apply_rope(x, rope(2, 3))
    assert torch.equal(out[..., 8:], x[..., 8:])
    assert not torch.allclose(out[..., :8], x[..., :8])


def test_bf16_input_keeps_dtype():
    rope = RotaryEmbedding(head_dim=8)
    x = torch.randn(1, 2, 4, 8).bfloat16()
    out = apply_rope(x, rope(2, 2))
    assert out.dtype == torch.bfloat16
    ref = apply_rope(x.float(), rope(2, 2))
    assert torch.allclose(out.float(), ref, atol=3e-2)


def test_bad_rotated_dim_is_refused():
    with pytest.raises(ValueError, match='multiple of 4'):
        RotaryEmbedding(head_dim=6)


def test_cache_is_bounded_lru_and_cleared_on_move():
    rope = RotaryEmbedding(head_dim=8, cache_size=2)
    a = rope(2, 2)
    rope(3, 3)
    assert rope(2, 2).cos is a.cos  # hit refreshes (2, 2)
    rope(4, 4)  # evicts (3, 3), the least recently used
    grids = [k[1:3] for k, _dev, _inf in rope.cached_keys()]
    assert grids == [(2, 2), (4, 4)]
    rope.to(torch.float64)
    assert rope.cached_keys() == []
    with pytest.raises(ValueError, match='cache_size'):
        RotaryEmbedding(head_dim=8, cache_size=0)


def test_tables_made_in_inference_mode_are_kept_apart():
    rope = RotaryEmbedding(head_dim=8)
    with torch.inference_mode():
        inf = rope(2, 3)
    train = rope(2, 3)
    assert inf.cos.is_inference() and not train.cos.is_inference()
    q = torch.randn(1, 1, 6, 8, requires_grad=True)
    apply_rope(q, train).sum().backward()  # would fail with an inference table
    assert q.grad is not None


def test_prefix_rows_are_an_option():
    rope = RotaryEmbedding(head_dim=8, anchor=(2, 2))
    t = rope.grid(4, 4, prefix=((3., -1.), None))
    assert t.cos.shape == (2 + 16, 4)
    # a positioned prefix row is scaled like the grid (s = 0.5); the None row is the identity
    ref = rope.table(torch.tensor([[1.5, -0.5]]))
    assert torch.allclose(t.cos[0], ref.cos[0]) and torch.allclose(t.sin[0], ref.sin[0])
    assert torch.all(t.cos[1] == 1) and torch.all(t.sin[1] == 0)
    assert torch.equal(t.cos[2:], rope.grid(4, 4).cos)
    unscaled = rope.grid(4, 4, scaled=False)
    assert torch.equal(unscaled.cos, RotaryEmbedding(head_dim=8).grid(4, 4).cos)


def test_one_dimensional_sequences_and_offsets():
    rope = RotaryEmbedding(head_dim=8, ndim=1)
    assert torch.allclose(rope.freqs, 10000**(-torch.arange(0, 8, 2) / 8))
    full = rope(10)
    assert full.cos.shape == (10, 4)
    assert torch.allclose(full.sin[3], torch.sin(3 * rope.freqs))
    step = rope(1, offset=7)  # one decoding step at position 7
    assert torch.equal(step.cos, full.cos[7:8]) and torch.equal(step.sin, full.sin[7:8])
    for off in range(20, 40):  # decoding does not fill the cache: one table per capacity
        rope(1, offset=off)
    assert len(rope.cached_keys()) <= 4  # capacities 8, 16, 32, 64
    with pytest.raises(ValueError, match='takes 1 size'):
        rope(2, 3)


def test_half_pairing_equals_interleaved_with_permuted_channels():
    """rotate_half (transformers' LLaMA) is interleaved RoPE on channels permuted to
    [even..., odd...] (how EasyLM's adjacent-pair LLaMA converts to transformers)."""
    torch.manual_seed(0)
    inter = RotaryEmbedding(head_dim=8, ndim=1)
    half = RotaryEmbedding(head_dim=8, ndim=1, pairing='half')
    x = torch.randn(2, 3, 5, 8)
    perm = torch.cat([torch.arange(0, 8, 2), torch.arange(1, 8, 2)])
    a = apply_rope(x, inter(5))[..., perm]
    b = apply_rope(x[..., perm], half(5))
    assert torch.allclose(a, b, atol=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r'ratio \(rope_ratio\) must be in \(0, 1\]'):
        RotaryEmbedding(head_dim=8, ratio=1.5)
    with pytest.raises(ValueError, match='ndim must be 1 or 2'):
        RotaryEmbedding(head_dim=8, ndim=3)
    with pytest.raises(ValueError, match='2-D grids only'):
        RotaryEmbedding(head_dim=8, ndim=1, anchor=4)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_tables_are_float32_at_the_largest_positions_under_autocast(dtype):
    """Tables built under half-precision autocast stay float32 and match a float64 computation
    at the largest positions the configs reach: a 208x336 grid (the pyramid's first stage on
    an 832x1344 COCO crop, scaled by AS2DRoPE) and 4,096 sequence positions (LVM). In fp16 the
    angle of position 4,095 would be off by up to 2 rad (its spacing there)."""
    grid_rope = RotaryEmbedding(head_dim=64, ndim=2, anchor=56)
    seq_rope = RotaryEmbedding(head_dim=64, ndim=1)
    with torch.autocast('cpu', dtype=dtype):
        grid = grid_rope.grid(208, 336)
        seq = seq_rope.sequence(4096)
    sx, sy = grid_rope.scale(208, 336)
    pos = grid_positions(208, 336).double() * torch.tensor([sx, sy], dtype=torch.float64)
    freqs = grid_rope.freqs.double()
    ang = torch.stack([pos[:, :1] * freqs, pos[:, 1:] * freqs], dim=-1).flatten(-2)
    seq_ang = torch.arange(4096, dtype=torch.float64)[:, None] * seq_rope.freqs.double()
    for table, ref in ((grid, ang), (seq, seq_ang)):
        assert table.cos.dtype == table.sin.dtype == torch.float32
        assert torch.allclose(table.cos.double(), ref.cos(), atol=5e-4)
        assert torch.allclose(table.sin.double(), ref.sin(), atol=5e-4)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_rotation_of_half_inputs_is_computed_in_float32(dtype):
    """A half-precision q/k is rotated in float32 and rounded once: the result equals the float64
    rotation of the same half values to the output dtype's rounding, at position 4,095."""
    rope = RotaryEmbedding(head_dim=32, ndim=1)
    table = rope.sequence(8, offset=4088)
    x = (100 * torch.randn(2, 8, 3, 32)).to(dtype)
    out = apply_rope(x, table, inner_dims=1)
    ref = apply_rope(x.double(), (table.cos.double(), table.sin.double()), inner_dims=1)
    assert out.dtype == dtype
    eps = torch.finfo(dtype).eps
    assert ((out.double() - ref).abs() <= eps * ref.abs() + 1e-3).all()
