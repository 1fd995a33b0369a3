"""Row-sparse convolution pieces for FCMAE.

FCMAE masks whole cells of the last-stage grid (32x32 pixels at stride 32) and every sample keeps
the same number ``n`` of them. So the visible part of a stage-``k`` feature map is a *regular*
tensor of rows ``(B, n, s, s, C)``: the ``n`` kept cells of each sample (in raster order), each an
``s x s`` block of positions (``s = 32 / stride_k``: 8, 4, 2, 1). On this layout

- per-position ops (LayerNorm, Linears, GELU, drop path) act on the rows directly;
- GRN is a per-sample (or batch-wide) L2 norm over the rows;
- the stride-2 downsample is a reshape of each cell's 2x2 children plus one Linear;
- the 7x7 depth-wise convolution is *submanifold*: outputs at visible sites only, masked
  neighbours contribute nothing. Two backends: ``'conv'`` scatters the rows into a zero map, runs
  the dense depth-wise convolution and gathers the visible rows back (fast: one dense op, cuDNN /
  oneDNN); ``'gather'`` sums the 49 shifted neighbour rows (index maps with a zero row for masked
  or outside sites), computing at visible sites only (exact, the sparse reference).

No library fits (spconv and mmcv.ops have no depth-wise sparse conv and no CPU backward;
MinkowskiEngine's depth-wise conv lives in a CUDA-only fork), hence this module.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .norm import grn_channels_last

__all__ = ['cells_kept', 'random_cell_mask', 'CellLayout', 'rows_to_map', 'map_to_rows',
           'submanifold_dwconv', 'rows_grn', 'rows_downsample']


def cells_kept(num_cells: int, ratio: float) -> int:
    """Visible cells per sample of FCMAE's mask: ``int(num_cells * (1 - ratio))``."""
    return int(num_cells * (1 - ratio))


def random_cell_mask(batch: int, grid: Tuple[int, int], ratio: float,
                     generator: Optional[torch.Generator] = None,
                     device=None) -> torch.Tensor:
    """FCMAE's mask: (B, Hc * Wc), 1 = masked, 0 = visible.

    Every sample keeps ``int(L * (1 - ratio))`` cells (19 of 49 at ratio 0.6), chosen by the
    argsort of uniform noise (the MAE shuffle); ``generator`` makes it reproducible.
    """
    L = grid[0] * grid[1]
    keep = cells_kept(L, ratio)
    if keep < 1:
        raise ValueError(f'mask ratio {ratio} leaves no visible cell of the {grid[0]}x{grid[1]} '
                         'grid.')
    noise = torch.rand(batch, L, generator=generator,
                       device=generator.device if generator is not None else device)
    ids = noise.argsort(dim=1)[:, :keep]
    mask = torch.ones(batch, L, device=noise.device)
    mask.scatter_(1, ids, 0.)
    return mask.to(device) if device is not None else mask


class CellLayout:
    """Where the visible rows sit: built once per mask, shared by every stage.

    Args:
        mask: (B, L) with 1 = masked; every sample must keep the same number of cells.
        grid: (Hc, Wc), the last-stage grid (L = Hc * Wc).
        n: The number of visible cells of every sample, when the caller knows it (a mask from
            :func:`random_cell_mask` keeps ``int(L * (1 - ratio))``): the mask is then not read
            on the host, so the layout traces into one ``torch.compile`` graph with static
            shapes. ``None``: counted from the mask and checked (a host sync).

    Attributes:
        n: Visible cells per sample.
        ids: (B, n) visible cell indices per sample, ascending (raster order).
        flat: (B * n,) the same as indices into the flattened (B * L) cells.
    """

    def __init__(self, mask: torch.Tensor, grid: Tuple[int, int], n: Optional[int] = None):
        B, L = mask.shape
        if L != grid[0] * grid[1]:
            raise ValueError(f'mask has {L} cells per sample, the {grid[0]}x{grid[1]} grid has '
                             f'{grid[0] * grid[1]}.')
        visible = mask == 0
        if n is None:
            counts = visible.sum(1)
            if B and not bool((counts == counts[0]).all()):
                raise ValueError('every sample must keep the same number of cells, got '
                                 f'{counts.tolist()}.')
            n = int(counts[0]) if B else 0
        if n == 0:
            raise ValueError('the mask hides every cell: nothing to encode.')
        if not 0 < n <= L:
            raise ValueError(f'n must be in 1..{L} visible cells, got {n}.')
        self.batch, self.grid, self.num_cells, self.n = B, tuple(grid), L, n
        # stable sort keeps the visible cells in raster order
        self.ids = visible.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :n]
        self.flat = (self.ids + torch.arange(B, device=mask.device)[:, None] * L).reshape(-1)
        self._index_maps = {}

    def sites(self, s: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sample, y, x) of every row of a stage with ``s x s`` positions per cell: three
        (B * n * s * s,) index tensors, in row order."""
        B, n, Wc = self.batch, self.n, self.grid[1]
        pos = torch.arange(s, device=self.ids.device)
        y = (self.ids // Wc * s)[:, :, None, None] + pos[:, None]
        x = (self.ids % Wc * s)[:, :, None, None] + pos
        b = torch.arange(B, device=self.ids.device)[:, None, None, None]
        shape = (B, n, s, s)
        return (b.expand(shape).reshape(-1), y.expand(shape).reshape(-1),
                x.expand(shape).reshape(-1))

    def index_map(self, s: int) -> torch.Tensor:
        """(B, Hc * s, Wc * s) row number (into the B * n * s * s rows) of each site, -1 where
        masked; cached per ``s``."""
        if s not in self._index_maps:
            B, (Hc, Wc), n = self.batch, self.grid, self.n
            rows = torch.arange(B * n * s * s, device=self.ids.device).view(B * n, s, s)
            full = rows.new_full((B * self.num_cells, s, s), -1).index_copy(0, self.flat, rows)
            self._index_maps[s] = full.view(B, Hc, Wc, s, s).permute(0, 1, 3, 2, 4).reshape(
                B, Hc * s, Wc * s)
        return self._index_maps[s]


def map_to_rows(x: torch.Tensor, layout: CellLayout) -> torch.Tensor:
    """(B, C, Hc * s, Wc * s) map -> (B, n, s, s, C) visible rows."""
    B, C, H, W = x.shape
    (Hc, Wc), n = layout.grid, layout.n
    s = H // Hc
    cells = x.permute(0, 2, 3, 1).reshape(B, Hc, s, Wc, s, C).transpose(2, 3).reshape(
        B * Hc * Wc, s, s, C)
    return cells.index_select(0, layout.flat).view(B, n, s, s, C)


def rows_to_map(rows: torch.Tensor, layout: CellLayout) -> torch.Tensor:
    """(B, n, s, s, C) rows -> (B, C, Hc * s, Wc * s) map, zeros at masked cells (channels-last
    memory, which the depth-wise convolution takes as is)."""
    B, n, s, _, C = rows.shape
    Hc, Wc = layout.grid
    full = rows.new_zeros(B * Hc * Wc, s, s, C).index_copy(0, layout.flat,
                                                           rows.reshape(B * n, s, s, C))
    return full.view(B, Hc, Wc, s, s, C).permute(0, 1, 3, 2, 4, 5).reshape(
        B, Hc * s, Wc * s, C).permute(0, 3, 1, 2)


def submanifold_dwconv(rows: torch.Tensor, layout: CellLayout, weight: torch.Tensor,
                       bias: Optional[torch.Tensor], backend: str = 'conv') -> torch.Tensor:
    """Depth-wise ``k x k`` convolution (stride 1, 'same' padding) at the visible sites only.

    Args:
        rows: (B, n, s, s, C).
        weight: (C, 1, k, k) of an ``nn.Conv2d(C, C, k, groups=C)``; ``bias`` (C,) or None.
        backend: ``'conv'`` (scatter, dense depth-wise conv, gather) or ``'gather'`` (sum of
            the k*k shifted neighbour rows).

    Returns:
        (B, n, s, s, C), equal to ``conv(x * keep) * keep`` read at the visible sites.
    """
    B, n, s, _, C = rows.shape
    k = weight.shape[-1]
    if backend == 'conv':
        out = F.conv2d(rows_to_map(rows, layout), weight, bias, padding=k // 2, groups=C)
        return map_to_rows(out, layout)
    if backend != 'gather':
        raise ValueError(f"dwconv backend must be 'conv' or 'gather', got {backend!r}.")
    r = k // 2
    index = F.pad(layout.index_map(s), (r, r, r, r), value=-1)  # (B, H + 2r, W + 2r)
    b, y, x = layout.sites(s)  # the visible sites in row order (cell-major)
    flat = torch.cat([rows.reshape(-1, C), rows.new_zeros(1, C)])  # row -1 -> the zero row
    w = weight.view(C, k * k).t()  # (k*k, C)
    out = None
    for dy in range(k):
        for dx in range(k):
            nb = index[b, y + dy, x + dx]
            term = flat[nb] * w[dy * k + dx]
            out = term if out is None else out + term
    if bias is not None:
        out = out + bias
    return out.view(B, n, s, s, C)


def rows_grn(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-6,
             batch_stat: bool = False) -> torch.Tensor:
    """GRN over the visible rows (B, n, s, s, C).

    ``batch_stat=False``: each sample's L2 norm over its visible positions (the paper's JAX
    definition, which equals the dense GRN on the masked map). ``True``: one norm over every row of
    the batch, as the official PyTorch ``MinkowskiGRN`` (``utils.py``) computes it.
    """
    return grn_channels_last(x, gamma, beta, eps, dims=(0, 1, 2, 3) if batch_stat else (1, 2, 3))


def rows_downsample(x: torch.Tensor, weight: torch.Tensor,
                    bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``Conv2d(C, C', 2, stride=2)`` on rows: (B, n, s, s, C) -> (B, n, s/2, s/2, C').

    Masks are constant on cells, so each visible output site has its four children visible; the
    convolution is then one Linear over each 2x2 group, its weight (C', C, 2, 2) flattened.
    """
    B, n, s, _, C = x.shape
    groups = x.view(B, n, s // 2, 2, s // 2, 2, C).permute(0, 1, 2, 4, 6, 3, 5)
    return F.linear(groups.reshape(B, n, s // 2, s // 2, C * 4),
                    weight.reshape(weight.shape[0], C * 4), bias)
