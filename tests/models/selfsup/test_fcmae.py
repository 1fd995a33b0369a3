"""FCMAE: the sparse encoder equals the masked-dense oracle (forward and gradients), masks,
GRN statistics, decoder and loss, and sparse -> dense weight loading; torch.compile (one graph, no
recompilation with fresh masks) and fp16 / bf16 autocast."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

import visionllama_mm  # noqa: F401
from visionllama_mm.models.backbones import ConvNeXtV2
from visionllama_mm.models.layers.row_sparse import (CellLayout, map_to_rows, random_cell_mask,
                                                     rows_grn, rows_to_map, submanifold_dwconv)
from visionllama_mm.models.selfsup import SparseConvNeXtV2
from ...compile_checks import assert_one_graph_no_recompile

TINY = dict(depths=[1, 1, 2, 1], channels=[8, 16, 24, 32])


def _encoder(seed=0, **kwargs):
    torch.manual_seed(seed)
    enc = SparseConvNeXtV2(TINY, **kwargs)
    g = torch.Generator().manual_seed(seed)
    enc.init_weights()
    with torch.no_grad():  # GRN, norms and biases away from their zero / one init
        for name, p in enc.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn(p.shape, generator=g) * 0.3)
    return enc


def _run(enc, x, mask, impl, backend='conv'):
    enc = copy.deepcopy(enc)
    enc.impl, enc.dwconv_backend = impl, backend
    x = x.clone().requires_grad_()
    torch.manual_seed(123)  # the same drop-path draws in every run
    out, _ = enc(x, mask)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(7)))
    return out.detach(), x.grad, {n: p.grad for n, p in enc.named_parameters()}


def _masks(B, grid):
    """A random 0.6 mask, and masks with a whole border row / column hidden in every sample
    (the map must keep its size and place: the official ME ``dense()`` would shift it)."""
    Hc, Wc = grid
    yield random_cell_mask(B, grid, 0.6, torch.Generator().manual_seed(3))
    rows = torch.zeros(B, Hc, Wc)
    rows[:, 0] = 1
    rows[:, -1, 1:] = 1
    yield rows.flatten(1)
    cols = torch.zeros(B, Hc, Wc)
    cols[:, :, -1] = 1
    cols[:, 1:, 0] = 1
    yield cols.flatten(1)


@pytest.mark.parametrize('backend', ['conv', 'gather'])
@pytest.mark.parametrize('grn_batch_stat', [False, True])
def test_sparse_encoder_equals_masked_dense_forward_and_gradients(backend, grn_batch_stat):
    enc = _encoder(drop_path_rate=0.2, grn_batch_stat=grn_batch_stat)
    x = torch.randn(3, 3, 96, 128)
    for mask in _masks(3, (3, 4)):
        ref, ref_dx, ref_dw = _run(enc, x, mask, 'masked_dense')
        out, dx, dw = _run(enc, x, mask, 'sparse', backend)
        assert out.shape == (3, 32, 3, 4)
        assert (out * mask.view(3, 1, 3, 4)).abs().max() == 0  # zeros at masked cells
        assert (out - ref).abs().max() <= 1e-5
        assert (dx - ref_dx).abs().max() <= 1e-5
        for name in ref_dw:
            scale = ref_dw[name].abs().max().clamp(min=1.)
            assert (dw[name] - ref_dw[name]).abs().max() <= 1e-5 * scale, name


def test_masked_positions_do_not_leak():
    """Changing the image inside masked cells changes nothing the sparse encoder outputs."""
    enc = _encoder().eval()
    x = torch.randn(2, 3, 64, 64)
    mask = torch.tensor([[1., 0., 0., 1.], [0., 1., 1., 0.]])
    keep = (1 - mask).view(2, 1, 2, 1, 2, 1).expand(2, 1, 2, 32, 2, 32).reshape(2, 1, 64, 64)
    noisy = x + torch.randn_like(x) * 10 * (1 - keep)
    assert torch.equal(enc(x, mask)[0], enc(noisy, mask)[0])


def test_grn_per_sample_differs_from_the_official_batch_statistic():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 2, 2, 6, generator=g) * torch.tensor([1., 5.]).view(2, 1, 1, 1, 1)
    gamma, beta = torch.randn(6, generator=g), torch.randn(6, generator=g)
    per_sample = rows_grn(x, gamma, beta)
    batch = rows_grn(x, gamma, beta, batch_stat=True)
    assert (per_sample - batch).abs().max() > 0.1
    # per sample equals mmpretrain's dense GRN applied to each sample's visible positions
    from mmpretrain.models.utils import GRN
    grn = GRN(6)
    grn.gamma.data, grn.beta.data = gamma, beta
    dense = grn(x[0].reshape(1, 3 * 2, 2, 6), data_format='channel_last')
    assert torch.allclose(per_sample[0].reshape(1, 6, 2, 6), dense, atol=1e-6)


def test_mask_keeps_19_of_49_cells_and_is_seedable():
    m1 = random_cell_mask(4, (7, 7), 0.6, torch.Generator().manual_seed(0))
    m2 = random_cell_mask(4, (7, 7), 0.6, torch.Generator().manual_seed(0))
    assert torch.equal(m1, m2) and ((1 - m1).sum(1) == 19).all()
    assert not torch.equal(m1, random_cell_mask(4, (7, 7), 0.6, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match='same number of cells'):
        CellLayout(torch.tensor([[0., 1.], [0., 0.]]), (1, 2))


def test_row_layout_round_trip_and_dwconv_backends():
    mask = random_cell_mask(2, (2, 3), 0.5, torch.Generator().manual_seed(0))
    layout = CellLayout(mask, (2, 3))
    keep = (1 - mask).view(2, 1, 2, 1, 3, 1).expand(2, 1, 2, 4, 3, 4).reshape(2, 1, 8, 12)
    x = torch.randn(2, 5, 8, 12) * keep
    rows = map_to_rows(x, layout)
    assert rows.shape == (2, 3, 4, 4, 5) and torch.equal(rows_to_map(rows, layout), x)
    known = CellLayout(mask, (2, 3), n=3)  # the count given: the mask is not read on the host
    assert torch.equal(known.ids, layout.ids) and torch.equal(known.flat, layout.flat)
    b, y, x_ = layout.sites(4)  # each row's site, in row order
    assert torch.equal(layout.index_map(4)[b, y, x_], torch.arange(2 * 3 * 4 * 4))
    w, b = torch.randn(5, 1, 7, 7), torch.randn(5)
    ref = torch.nn.functional.conv2d(x, w, b, padding=3, groups=5) * keep
    for backend in ('conv', 'gather'):
        out = rows_to_map(submanifold_dwconv(rows, layout, w, b, backend), layout)
        assert torch.allclose(out, ref, atol=1e-5), backend


def test_sparse_weights_load_into_the_dense_backbone_without_renaming():
    enc = _encoder()
    dense = ConvNeXtV2(TINY)
    missing, unexpected = dense.load_state_dict(enc.state_dict(), strict=False)
    assert unexpected == [] and sorted(missing) == ['norm3.bias', 'norm3.weight']
    # with nothing masked the sparse encoder is the dense backbone without its final norm
    x = torch.randn(2, 3, 64, 64)
    ref = x
    for down, stage in zip(dense.eval().downsample_layers, dense.stages):  # stock modules
        ref = stage(down(ref))
    out, _ = enc.eval()(x, torch.zeros(2, 4))
    assert torch.allclose(out, ref, atol=1e-5)


def _fcmae(**backbone):
    return MODELS.build(dict(
        type='FCMAE',
        backbone=dict(type='SparseConvNeXtV2', arch=TINY, mask_ratio=0.6, **backbone),
        neck=dict(type='FCMAEDecoder', in_channels=32, embed_dims=16),
        head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=32,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2'))))


def test_fcmae_loss_counts_masked_cells_only():
    model = _fcmae()
    model.init_weights()
    assert model.neck.pred.out_channels == 32 * 32 * 3
    assert 0 < model.neck.mask_token.std() < 0.05
    x = torch.randn(2, 3, 96, 96)
    torch.manual_seed(0)
    latent, mask = model.backbone(x)
    pred = model.neck(latent, mask)
    assert pred.shape == (2, 9, 3072) and ((1 - mask).sum(1) == 3).all()  # int(9 * 0.4) = 3
    loss = model.head.loss(pred, x, mask)
    visible = (1 - mask).bool()
    pred2 = pred.clone()
    pred2[visible] += 100.
    assert torch.equal(model.head.loss(pred2, x, mask), loss)
    torch.manual_seed(0)
    assert torch.equal(model.loss(x)['loss'], loss)
    loss.backward()
    assert model.backbone.stages[0][0].pointwise_conv1.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='square'):
        model.loss(torch.randn(1, 3, 64, 96))


def test_bad_inputs_are_refused():
    enc = SparseConvNeXtV2(TINY)
    with pytest.raises(ValueError, match='multiple of 32'):
        enc(torch.randn(1, 3, 60, 64))
    with pytest.raises(ValueError, match=r'mask must be \(B, L\)'):
        enc(torch.randn(1, 3, 64, 64), torch.zeros(1, 3))
    with pytest.raises(ValueError, match='mask_ratio must be in'):
        SparseConvNeXtV2(TINY, mask_ratio=1.0)
    with pytest.raises(ValueError, match='dwconv_backend must be one of'):
        SparseConvNeXtV2(TINY, dwconv_backend='spconv')
    with pytest.raises(ValueError, match='hides every cell'):
        enc(torch.randn(1, 3, 64, 64), torch.ones(1, 4))


# ------------------------------------------------------------------------------ torch.compile
def test_fcmae_loss_is_one_graph_without_recompilation():
    """FCMAE's training forward with the sparse encoder (mask drawn inside, drop path on) traces
    into one graph with no break; three steps of same-shape batches, each with a fresh random
    mask, compile it once: the number of visible rows is fixed by the mask ratio, never read
    from the mask."""
    model = _fcmae(drop_path_rate=0.1)
    model.init_weights()
    model.train()
    assert_one_graph_no_recompile(lambda x: model.loss(x)['loss'],
                                  [(torch.randn(2, 3, 96, 96), ) for _ in range(3)],
                                  backward=True)


# --------------------------------------------------------------------------- mixed precision
@pytest.mark.parametrize('dtype, out_tol, grad_tol, min_cos', [
    (torch.float16, 1e-2, 5e-2, 0.995), (torch.bfloat16, 5e-2, 0.25, 0.95)])
def test_sparse_fcmae_autocast_fp16_bf16_stays_finite_and_close_to_fp32(
        dtype, out_tol, grad_tol, min_cos):
    """The sparse FCMAE step on a 256x256 image (25 of 64 cells visible) with the encoder's MLP
    activations in the hundreds: encoder output, loss and gradients finite and close to fp32
    under fp16 and bf16 autocast (tolerances as the dense backbone's test; measured: encoder
    output 1.8e-3 / 1.4e-2, gradients 7.6e-3 / 1.5e-2, min cosine 0.996 / 0.983). fp16 scales the
    loss by 2^16 before the backward, as AmpOptimWrapper's loss scaler starts."""
    from ..backbones.test_convnextv2 import _loud
    model = _fcmae()
    model.init_weights()
    _loud(model.backbone)
    peaks = []
    model.backbone.stages[0][0].pointwise_conv1.register_forward_hook(
        lambda m, i, o: peaks.append(o.detach().abs().max().item()))
    x = torch.randn(1, 3, 256, 256)
    scale = 2.**16 if dtype == torch.float16 else 1.

    def step(dtype):
        model.zero_grad()
        torch.manual_seed(0)  # the same mask
        with torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            latent, mask = model.backbone(x)
            loss = model.head.loss(model.neck(latent, mask), x, mask)
        (loss * scale).backward()
        return latent.detach().float(), loss.detach().float(), {
            n: p.grad / scale for n, p in model.named_parameters()}

    ref_latent, ref, ref_grads = step(None)
    assert peaks[0] > 500
    latent, loss, grads = step(dtype)
    assert torch.isfinite(latent).all() and torch.isfinite(loss)
    assert all(torch.isfinite(v).all() for v in grads.values())
    assert (latent - ref_latent).norm() / ref_latent.norm() < out_tol
    assert abs(loss - ref) / ref < out_tol
    flat, ref_flat = (torch.cat([g[n].flatten() for n in ref_grads]) for g in (grads, ref_grads))
    assert (flat - ref_flat).norm() / ref_flat.norm() < grad_tol
    # per tensor where the gradient is not negligible (some first-Linear biases get ~1e-6 of
    # the largest gradient's norm, a sum of cancelling terms, and no meaningful direction)
    largest = max(v.norm() for v in ref_grads.values())
    for n, v in ref_grads.items():
        if v.norm() > 1e-3 * largest:
            assert F.cosine_similarity(grads[n].flatten(), v.flatten(), dim=0) > min_cos, n


def test_degenerate_mask_ratios_are_refused():
    """A ratio that masks no cell (the loss is a mean over the masked cells: NaN from the first
    iteration) is refused at construction, also through the shipped config; one that leaves no
    visible cell at the input size, at the first batch."""
    with pytest.raises(ValueError) as err:
        SparseConvNeXtV2(TINY, mask_ratio=0.0)
    assert str(err.value) == ('SparseConvNeXtV2: mask_ratio must be in (0, 1), got 0.0 (0 masks no '
                              'cell, so the FCMAE loss, a mean over the masked cells, would be '
                              'NaN).')
    from mmengine.config import Config
    repo = __file__.rsplit('/tests/', 1)[0]
    cfg = Config.fromfile(
        f'{repo}/configs/convnextv2/fcmae_convnextv2-atto_8xb64-accum8-coslr-800e_in1k.py')
    cfg.model.backbone.mask_ratio = 0.0
    with pytest.raises(ValueError, match=r'SparseConvNeXtV2: mask_ratio must be in \(0, 1\), got '
                                         r'0\.0 \(0 masks no cell'):
        MODELS.build(cfg.model)
    enc = SparseConvNeXtV2(TINY, mask_ratio=0.8)  # 2x2 cells at 64 px: keeps int(4 * 0.2) = 0
    with pytest.raises(ValueError) as err:
        enc(torch.randn(1, 3, 64, 64))
    assert str(err.value) == ('SparseConvNeXtV2: mask_ratio=0.8 keeps 0 of the 4 cells (2x2 cells '
                              'of 32 px) of a 64x64 input, so no cell is visible; choose a ratio '
                              'in (0, 0.75] or a larger input.')
    assert enc(torch.randn(1, 3, 96, 96))[1].sum() == 8  # 3x3 cells: keeps 1, masks 8
