"""FCMAE: fully convolutional masked auto-encoder pre-training of ConvNeXt V2 (Woo et al.
2023), with an encoder that computes at visible positions only.

    image (B, 3, H, W), mask (B, L) on the 32-px cell grid (L = H/32 * W/32, 1 = masked)
      -> SparseConvNeXtV2: stem on the visible 32x32 cells -> rows (B, n, 8, 8, C0)
         -> blocks (submanifold 7x7 depth-wise conv, LN, Linear, GELU, GRN, Linear on rows)
         -> [LN + 2x2/2 conv as a Linear over each cell's children -> blocks] x 3
         -> (B, C3, H/32, W/32), zeros at masked cells
      -> FCMAEDecoder: 1x1 proj to 512, mask token at masked cells, one ConvNeXt V2 block,
         1x1 prediction of 32*32*3 values per cell
      -> MAEPretrainHead(norm_pix=True, patch_size=32): normalised-pixel MSE on masked cells.

The encoder's parameters are :class:`ConvNeXtV2`'s (mmpretrain's names) without the final norm,
so its weights load into the dense backbone with no renaming. ``impl='masked_dense'`` runs the same
weights as dense convolutions on the masked map (masks before and after every spatial op, GRN on
the masked features): the paper's "masked dense" equivalent and the test oracle of the sparse
path.

GRN in the encoder is per sample over the visible positions (``grn_batch_stat=False``, the
paper's JAX definition, equal to the dense GRN on the masked map). The official PyTorch code
computes one statistic over all visible positions of the batch (``MinkowskiGRN``, upstream
issue #86); ``grn_batch_stat=True`` reproduces it.

Initialisation: the official ``FCMAE._init_weights`` calls timm's ``trunc_normal_``
without ``std`` (i.e. std 1.0) on every conv and sparse Linear, which looks unintended and which
mmpretrain's and SparK's FCMAE-style models do not do. Here every conv / Linear gets a truncated
normal with std .02 and zero bias, LayerNorms 1 / 0, the mask token N(0, .02), GRN zero.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.models.backbones.convnext import ConvNeXtBlock
from mmpretrain.models.selfsup.base import BaseSelfSupervisor

from ...engine.pretrained import PretrainedInitMixin
from ...registry import MODELS
from ..backbones.convnextv2 import ConvNeXtV2
from ..layers.norm import grn_channels_last
from ..layers.row_sparse import (CellLayout, cells_kept, map_to_rows, random_cell_mask,
                                 rows_downsample, rows_grn, rows_to_map, submanifold_dwconv)
from ..utils import renamed_arg

__all__ = ['SparseConvNeXtV2', 'FCMAEDecoder', 'FCMAE']

_CELL = 32  # pixels per mask cell: the total stride of ConvNeXt


@MODELS.register_module()
class SparseConvNeXtV2(ConvNeXtV2):
    """ConvNeXt V2 encoder for FCMAE.

    Args:
        arch: As :class:`ConvNeXtV2`.
        mask_ratio: Fraction of the cells hidden, in (0, 1); every sample keeps
            ``int(L * (1 - ratio))`` cells, which must leave one cell visible and one masked at
            the input size (checked at the first batch).
        impl: ``'sparse'`` (visible rows only) or ``'masked_dense'`` (the oracle).
        dwconv_backend: Submanifold depth-wise conv of the sparse path: ``'conv'`` (scatter,
            dense depth-wise conv, gather; fast) or ``'gather'`` (49 shifted neighbour rows).
        grn_batch_stat: GRN statistic over the whole batch (official PyTorch code) instead of
            per sample (paper).
        drop_path_rate, in_channels, with_cp, init_cfg: As :class:`ConvNeXtV2`.

    ``forward(x, mask=None)``: x (B, 3, H, W) with H, W multiples of 32; ``mask`` (B, L) or
    ``None`` to draw one (``torch``'s global RNG, or ``generator``). Returns
    ``(features (B, C3, H/32, W/32) with zeros at masked cells, mask (B, L) float, 1 = masked)``.
    A drawn mask keeps ``int(L * (1 - mask_ratio))`` cells per sample, a number the sparse path
    knows without reading the mask, so the forward is one ``torch.compile`` graph with static
    shapes; a given mask has its visible cells counted on the host (a graph break there).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 mask_ratio: float = 0.6,
                 impl: str = 'sparse',
                 dwconv_backend: str = 'conv',
                 grn_batch_stat: bool = False,
                 in_channels: int = 3,
                 drop_path_rate: float = 0.,
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(arch=arch, in_channels=in_channels, drop_path_rate=drop_path_rate,
                         out_indices=-1, with_cp=with_cp, init_cfg=init_cfg)
        del self.norm3  # no final norm in the encoder (the decoder's proj follows)
        if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, (int, float)) \
                or not 0. < mask_ratio < 1.:
            why = (' (0 masks no cell, so the FCMAE loss, a mean over the masked cells, would be '
                   'NaN)' if mask_ratio == 0 else '')
            raise ValueError(f'SparseConvNeXtV2: mask_ratio must be in (0, 1), got '
                             f'{mask_ratio!r}{why}.')
        self.mask_ratio = float(mask_ratio)
        self.impl = self.check_choice('impl', impl, ('sparse', 'masked_dense'))
        self.dwconv_backend = self.check_choice('dwconv_backend', dwconv_backend,
                                                ('conv', 'gather'))
        self.grn_batch_stat = bool(grn_batch_stat)
        self.out_indices = [3]

    # ----------------------------------------------------------------------------- masking
    def check_input(self, x: torch.Tensor) -> Tuple[int, int]:
        self.check_batch(x, type(self).__name__)
        H, W = x.shape[-2:]
        if H % _CELL or W % _CELL:
            raise ValueError(f'{type(self).__name__}: FCMAE masks 32x32-pixel cells; input '
                             f'size {H}x{W} must be a multiple of 32 (crop or resize to e.g. '
                             '224).')
        return H // _CELL, W // _CELL

    def random_mask(self, x: torch.Tensor,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(B, L) float, 1 = masked, for the image batch ``x``."""
        grid = self.check_input(x)
        cells = grid[0] * grid[1]
        keep = cells_kept(cells, self.mask_ratio)  # host ints from the shape: no sync
        if not 0 < keep < cells:
            raise ValueError(
                f'{type(self).__name__}: mask_ratio={self.mask_ratio} keeps {keep} of the '
                f'{cells} cells ({grid[0]}x{grid[1]} cells of 32 px) of a '
                f'{x.shape[-2]}x{x.shape[-1]} input, so '
                f'{"no cell is visible" if keep < 1 else "no cell is masked (the loss is NaN)"}; '
                f'choose a ratio in (0, {1 - 1 / cells:.4g}] or a larger input.')
        return random_cell_mask(x.shape[0], grid, self.mask_ratio, generator, device=x.device)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        grid = self.check_input(x)
        num_visible = None  # a given mask: counted on the host by CellLayout
        if mask is None:
            mask = self.random_mask(x, generator)
            num_visible = cells_kept(grid[0] * grid[1], self.mask_ratio)
        elif mask.shape != (x.shape[0], grid[0] * grid[1]):
            raise ValueError(f'{type(self).__name__}: mask must be (B, L) = '
                             f'{(x.shape[0], grid[0] * grid[1])} for a {tuple(x.shape)} input, '
                             f'got {tuple(mask.shape)}.')
        mask = mask.to(x.dtype)
        if self.impl == 'masked_dense':
            return self._forward_masked_dense(x, mask, grid), mask
        return self._forward_sparse(x, mask, grid, num_visible), mask

    # -------------------------------------------------------------------------- sparse path
    def _forward_sparse(self, x, mask, grid, num_visible=None):
        layout = CellLayout(mask, grid, num_visible)
        B, n = x.shape[0], layout.n
        stem_conv, stem_norm = self.downsample_layers[0]
        # the stem (4x4 / 4) never crosses a cell: run it on the visible 32x32 cells only
        cells = map_to_rows(x, layout)  # (B, n, 32, 32, 3)
        cells = cells.reshape(B * n, _CELL, _CELL, -1).permute(0, 3, 1, 2)
        y = stem_conv(cells)  # (B * n, C0, 8, 8)
        s = y.shape[-1]
        y = y.permute(0, 2, 3, 1).reshape(B, n, s, s, -1)
        y = F.layer_norm(y, y.shape[-1:], stem_norm.weight, stem_norm.bias, stem_norm.eps)
        for i, stage in enumerate(self.stages):
            if i > 0:
                norm, conv = self.downsample_layers[i]
                y = F.layer_norm(y, y.shape[-1:], norm.weight, norm.bias, norm.eps)
                y = rows_downsample(y, conv.weight, conv.bias)
            for block in stage:
                y = self.run_block(self._sparse_block, y, block, layout)
        return rows_to_map(y, layout).contiguous()

    def _sparse_block(self, x: torch.Tensor, block: ConvNeXtBlock,
                      layout: CellLayout) -> torch.Tensor:
        """One :class:`ConvNeXtBlock` (V2: GRN, no LayerScale) on rows (B, n, s, s, C)."""
        y = submanifold_dwconv(x, layout, block.depthwise_conv.weight, block.depthwise_conv.bias,
                               self.dwconv_backend)
        y = F.layer_norm(y, y.shape[-1:], block.norm.weight, block.norm.bias, block.norm.eps)
        y = block.act(block.pointwise_conv1(y))
        y = rows_grn(y, block.grn.gamma, block.grn.beta, block.grn.eps, self.grn_batch_stat)
        y = block.pointwise_conv2(y)
        return x + block.drop_path(y)

    # -------------------------------------------------------------------- masked-dense path
    def _forward_masked_dense(self, x, mask, grid):
        B = x.shape[0]

        def keep_map(s):  # (B, 1, Hc * s, Wc * s), 1 = visible
            k = (1 - mask).view(B, 1, grid[0], 1, grid[1], 1)
            return k.expand(-1, -1, -1, s, -1, s).reshape(B, 1, grid[0] * s, grid[1] * s)

        y = self.downsample_layers[0](x)
        y = y * keep_map(y.shape[-1] // grid[1])
        for i, stage in enumerate(self.stages):
            if i > 0:
                y = self.downsample_layers[i](y)
            keep = keep_map(y.shape[-1] // grid[1])
            y = y * keep
            for block in stage:
                y = self.run_block(self._masked_dense_block, y, block, keep)
        return y

    def _masked_dense_block(self, x, block, keep):
        y = block.depthwise_conv(x * keep) * keep
        y = block.norm(y.permute(0, 2, 3, 1), data_format='channel_last')
        y = block.act(block.pointwise_conv1(y))
        k = keep.permute(0, 2, 3, 1)
        y = y * k  # masked sites hold GELU(bias): zero them before the GRN statistic
        y = grn_channels_last(y, block.grn.gamma, block.grn.beta, block.grn.eps,
                              dims=(0, 1, 2) if self.grn_batch_stat else (1, 2))
        y = block.pointwise_conv2(y) * k
        return x + block.drop_path(y.permute(0, 3, 1, 2))


@MODELS.register_module()
class FCMAEDecoder(PretrainedInitMixin, BaseModule):
    """FCMAE decoder (the official ``fcmae.py``): ``proj`` (1x1 conv to ``embed_dims``),
    ``mask_token`` at the masked cells, ``num_layers`` ConvNeXt V2 blocks (the official
    ``decoder_depth``; ``depth`` is read too but deprecated), ``pred`` (1x1 conv to
    ``patch_size**2 * 3``).

    ``forward(x (B, C3, Hc, Wc), mask (B, Hc * Wc))`` -> (B, Hc * Wc, patch_size**2 * 3), the
    layout ``MAEPretrainHead`` compares with its ``patchify`` target ((p, q, c) per cell).
    """

    deprecated_names = ('depth', )  # old argument names still read (see renamed_arg)

    def __init__(self, in_channels: int, embed_dims: int = 512, num_layers: int = 1,
                 patch_size: int = 32, out_channels: int = 3, init_cfg=None,
                 depth: Optional[int] = None):
        num_layers = renamed_arg('FCMAEDecoder', 'depth', depth, 'num_layers', num_layers, 1)
        super().__init__(init_cfg=init_cfg or [
            dict(type='TruncNormal', layer=['Conv2d', 'Linear'], std=.02, bias=0.),
            dict(type='Constant', layer=['LayerNorm'], val=1., bias=0.)])
        self.proj = nn.Conv2d(in_channels, embed_dims, 1)
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dims, 1, 1))
        self.decoder = nn.Sequential(*[
            ConvNeXtBlock(embed_dims, layer_scale_init_value=0., use_grn=True)
            for _ in range(num_layers)])
        self.pred = nn.Conv2d(embed_dims, patch_size ** 2 * out_channels, 1)

    def init_weights(self):
        super().init_weights()
        nn.init.normal_(self.mask_token, std=.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, _, Hc, Wc = x.shape
        x = self.proj(x)
        m = mask.view(B, 1, Hc, Wc).to(x.dtype)
        x = torch.lerp(x, self.mask_token.to(x.dtype).expand_as(x), m)  # x*(1-m) + token*m
        x = self.pred(self.decoder(x))
        return x.flatten(2).transpose(1, 2)


@MODELS.register_module()
class FCMAE(PretrainedInitMixin, BaseSelfSupervisor):
    """FCMAE pre-training: ``backbone`` (a :class:`SparseConvNeXtV2`) -> ``neck``
    (:class:`FCMAEDecoder`) -> ``head`` (``MAEPretrainHead(norm_pix=True, patch_size=32)``)."""

    def extract_feat(self, inputs: torch.Tensor):
        return self.backbone(inputs)

    def loss(self, inputs: torch.Tensor, data_samples=None, **kwargs) -> dict:
        if inputs.shape[-1] != inputs.shape[-2]:
            # MAEPretrainHead.patchify (the target) takes square images only, as the official code
            raise ValueError(f'FCMAE: pre-training images must be square (the target is cut '
                             f'into 32x32 patches by MAEPretrainHead), got {tuple(inputs.shape)}.')
        latent, mask = self.backbone(inputs)
        pred = self.neck(latent, mask)
        return dict(loss=self.head.loss(pred, inputs, mask))
