"""DiTLLaMA denoiser: the official parameter counts, shapes, adaLN-Zero init, 2-D RoPE over the
token grid, the null class, activation checkpointing and clear errors."""
import pytest
import torch

from visionllama_mm.models.diffusion import DiTLLaMA

TINY = dict(embed_dims=32, depth=2, num_heads=2)


@pytest.mark.parametrize('arch,patch,block,count', [
    # official dit/models.py, without the frozen pos_embed DiT-LLaMA keeps but never adds
    ('b', 4, 'llama', 130_380_416), ('xl', 2, 'llama', 674_673_440),
    # counted from the official code (rounded): L/4 464.2M, XL/4 674.8M, SiT-LLaMA-S/2 32.8M
    ('l', 4, 'llama', None), ('xl', 4, 'llama', None), ('s', 2, 'llama', None)])
def test_parameter_counts(arch, patch, block, count):
    with torch.device('meta'):
        model = DiTLLaMA(arch=arch, patch_size=patch, block_type=block)
    n = sum(p.numel() for p in model.parameters())
    if count is not None:
        assert n == count
    else:
        spec = {'l': 464.2e6, 'xl': 674.8e6, 's': 32.8e6}[arch]
        assert abs(n - spec) < 0.06e6, n


def test_dit_baseline_counts_like_the_official_dit():
    # DiT-B/4: 4 x 768 MLP with biases instead of SwiGLU 2048; the sin-cos table is a buffer
    with torch.device('meta'):
        model = DiTLLaMA(arch='b', patch_size=4, block_type='dit')
    assert sum(p.numel() for p in model.parameters()) == 130_380_416 - 12 * (
        3 * 768 * 2048) + 12 * (2 * 768 * 3072 + 3072 + 768)
    assert model.pos_embed.shape == (1, 64, 768)


def test_shapes_and_adaln_zero_init():
    torch.manual_seed(0)
    model = DiTLLaMA(arch=TINY, patch_size=2, in_channels=4, input_size=8, num_classes=10)
    x, t, y = torch.randn(3, 4, 8, 8), torch.tensor([0, 500, 999]), torch.tensor([1, 2, 10])
    out = model(x, t, y)
    assert out.shape == (3, 8, 8, 8)
    assert torch.count_nonzero(out) == 0  # zero-initialised final layer: the block is identity
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    out = model(x, t, y)
    assert out.abs().mean() > 0
    # non-square inputs are a grid of h x w tokens, unpatchified back in place
    assert model(torch.randn(1, 4, 8, 12), t[:1], y[:1]).shape == (1, 8, 8, 12)
    assert DiTLLaMA(arch=TINY, in_channels=3, input_size=8, learn_sigma=False)(
        torch.randn(1, 3, 8, 8), t[:1], y[:1]).shape == (1, 3, 8, 8)


def test_unpatchify_puts_each_patch_back_where_it_came_from():
    """Zero blocks (identity), a patch conv and a final Linear that copy each token's 2x2 patch:
    the output is that patch, after the final (affine-free) LayerNorm over the 32 channels, back
    at its own place in the image (written out patch by patch here)."""
    model = DiTLLaMA(arch=TINY, patch_size=2, in_channels=1, input_size=4, learn_sigma=False)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.x_embedder.proj.weight.view(32, 4)[:4] = torch.eye(4)
        model.final_layer.linear.weight[:, :4] = torch.eye(4)
    x = torch.randn(2, 1, 4, 6)
    expected = torch.empty_like(x)
    for b in range(2):
        for r in range(2):
            for c in range(3):
                patch = x[b, 0, 2 * r:2 * r + 2, 2 * c:2 * c + 2].reshape(4)
                token = torch.nn.functional.layer_norm(torch.cat([patch, torch.zeros(28)]), (32, ),
                                                       eps=1e-6)
                expected[b, 0, 2 * r:2 * r + 2, 2 * c:2 * c + 2] = token[:4].view(2, 2)
    out = model(x, torch.zeros(2), torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(out, expected)


def test_rope_is_the_official_2d_table():
    """The official RAttention: complex frequencies theta^(-4k/d) for x = n mod H and
    y = n div H (H = sqrt(N)), interleaved per frequency as [x, y]."""
    model = DiTLLaMA(arch=dict(embed_dims=64, depth=1, num_heads=2), input_size=8, patch_size=2)
    d, n_side = 32, 4
    cos, sin = model.rope.grid(n_side, n_side)
    n = torch.arange(n_side * n_side)
    freqs = 1.0 / 10000**(torch.arange(0, d, 4)[:d // 4].float() / d)
    ang = torch.stack([torch.outer(n % n_side, freqs), torch.outer(n // n_side, freqs)], -1)
    torch.testing.assert_close(cos, ang.flatten(1).cos())
    torch.testing.assert_close(sin, ang.flatten(1).sin())


def test_null_class_and_dropout():
    model = DiTLLaMA(arch=TINY, input_size=4, num_classes=10).train()
    assert model.y_embedder.embedding_table.num_embeddings == 11
    torch.manual_seed(0)
    y = torch.zeros(20000, dtype=torch.long)
    table = model.y_embedder.embedding_table.weight
    dropped = (model.y_embedder(y) == table[10]).all(1).float().mean()
    assert abs(dropped - 0.1) < 0.01
    forced = model.y_embedder(y[:4], torch.tensor([True, False, True, False]))
    torch.testing.assert_close(forced, table[[10, 0, 10, 0]])
    model.eval()
    assert (model.y_embedder(y[:50]) == table[0]).all()
    assert DiTLLaMA(arch=TINY, input_size=4, num_classes=10, class_dropout_prob=0.).y_embedder \
        .embedding_table.num_embeddings == 10


def test_with_cp_gives_the_same_gradients():
    torch.manual_seed(0)
    a = DiTLLaMA(arch=TINY, input_size=8, num_classes=10).train()
    for p in a.parameters():
        torch.nn.init.normal_(p, std=0.1)
    b = DiTLLaMA(arch=TINY, input_size=8, num_classes=10, with_cp=True).train()
    b.load_state_dict(a.state_dict())
    x, t, y = torch.randn(2, 4, 8, 8), torch.tensor([3, 700]), torch.tensor([1, 2])
    keep = torch.zeros(2, dtype=torch.bool)
    for m in (a, b):
        m(x, t, y, keep).square().mean().backward()
    for (k, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=k)


def test_bf16_autocast():
    model = DiTLLaMA(arch=TINY, input_size=8, num_classes=10)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(torch.randn(2, 4, 8, 8), torch.tensor([1, 2]), torch.tensor([3, 4]))
    assert out.shape == (2, 8, 8, 8) and torch.isfinite(out.float()).all()


def test_errors():
    with pytest.raises(ValueError, match=r"unknown arch 'm'; valid names: b, l, s, xl, or a "
                       r"dict with keys \['embed_dims', 'num_layers', 'num_heads'\]\."):
        DiTLLaMA(arch='m')
    with pytest.raises(ValueError, match='block_type must be "llama" or "dit"'):
        DiTLLaMA(arch=TINY, block_type='vit')
    with pytest.raises(ValueError, match='input_size 30 is not a multiple of patch_size 4'):
        DiTLLaMA(arch=TINY, input_size=30, patch_size=4)
    model = DiTLLaMA(arch=TINY, input_size=8, block_type='dit')
    with pytest.raises(ValueError, match=r'expected \(B, 4, H, W\) with H, W multiples of 2'):
        model(torch.randn(1, 4, 7, 8), torch.zeros(1), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match=r'expected \(B, 4, H, W\) .*got \(1, 3, 8, 8\)'):
        model(torch.randn(1, 3, 8, 8), torch.zeros(1), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match='fixed 16-token position embedding; got a 5x4 grid'):
        model(torch.randn(1, 4, 10, 8), torch.zeros(1), torch.zeros(1, dtype=torch.long))


def test_official_layout_converts_to_the_same_outputs():
    from visionllama_mm.models.diffusion import convert_official_dit
    from .official_dit_reference import OfficialDiTLLaMA
    torch.manual_seed(0)
    ref = OfficialDiTLLaMA(input_size=8, patch=2, dim=64, depth=2, heads=2, classes=10).eval()
    for p in ref.parameters():  # adaLN and final layers non-zero, so every part matters
        torch.nn.init.normal_(p, std=0.2)
    ours = DiTLLaMA(arch=dict(embed_dims=64, depth=2, num_heads=2), patch_size=2,
                    input_size=8, num_classes=10).eval()
    sd, notes = convert_official_dit(ref.state_dict())
    ours.load_state_dict(sd, strict=True)
    assert notes == ['dropped pos_embed (1, 16, 64): DiT-LLaMA keeps the frozen sin-cos table '
                     'but never adds it (RoPE replaces it)']
    x, t, y = torch.randn(3, 4, 8, 8), torch.tensor([0, 250, 999]), torch.tensor([0, 9, 10])
    with torch.no_grad():
        diff = (ours(x, t, y) - ref(x, t, y)).abs().max()
    assert diff <= 1e-4, diff
    bad = {k: v for k, v in ref.state_dict().items() if not k.endswith('c_fc2.weight')}
    with pytest.raises(ValueError, match=r"blocks.0.mlp has \['c_fc1'\] of the SwiGLU"):
        convert_official_dit(bad)


def test_classifier_free_guidance():
    torch.manual_seed(0)
    model = DiTLLaMA(arch=TINY, input_size=8, num_classes=10).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x, t, y = torch.randn(2, 4, 8, 8), torch.tensor([5, 600]), torch.tensor([3, 7])
    with torch.no_grad():
        cond, uncond = model(x, t, y), model(x, t, torch.full_like(y, 10))
        torch.testing.assert_close(model.forward_with_cfg(x, t, y, 1.0), cond)
        out = model.forward_with_cfg(x, t, y, 4.0)  # official: the first 3 channels only
        torch.testing.assert_close(out[:, :3], uncond[:, :3] + 4 * (cond[:, :3] - uncond[:, :3]))
        torch.testing.assert_close(out[:, 3:], cond[:, 3:])
        out = model.forward_with_cfg(x, t, y, 4.0, guided_channels=None)  # all noise channels
        torch.testing.assert_close(out[:, :4], uncond[:, :4] + 4 * (cond[:, :4] - uncond[:, :4]))
        torch.testing.assert_close(out[:, 4:], cond[:, 4:])
    with pytest.raises(ValueError, match='no null class'):
        DiTLLaMA(arch=TINY, input_size=8, class_dropout_prob=0.).forward_with_cfg(x, t, y, 4.0)


def test_dit_block_position_embedding_is_dits_table():
    """block_type='dit': DiT's (MAE's) numpy float64 table: for raster token (i, j) the first half
    encodes the column j, the second the row i, each as [sin, cos] over 10000^(-k / (D / 4))."""
    import numpy as np
    D, g = 64, 4
    omega = 1. / 10000**(np.arange(D // 4, dtype=np.float64) / (D / 4))

    def axis(pos):
        out = np.outer(pos, omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    rows, cols = np.divmod(np.arange(g * g), g)
    expected = np.concatenate([axis(cols), axis(rows)], axis=1).astype(np.float32)
    model = DiTLLaMA(arch=dict(embed_dims=D, depth=1, num_heads=2), patch_size=2, input_size=2 * g,
                     block_type='dit')
    assert model.pos_embed.shape == (1, g * g, D)
    np.testing.assert_allclose(model.pos_embed[0].numpy(), expected, atol=2e-6)


def test_no_class_is_refused():
    with pytest.raises(ValueError) as err:
        DiTLLaMA(arch=TINY, input_size=8, num_classes=0)
    assert str(err.value) == ('DiTLLaMA: num_classes must be an int >= 1 (the labels of the '
                              'dataset), got 0.')
