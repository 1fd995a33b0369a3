"""MAE pre-training with a VisionLLaMA encoder (the official mmpretrain fork's ``mae.py``).

Reuses mmpretrain's ``MAE`` algorithm, ``MAEPretrainDecoder`` and ``MAEPretrainHead`` unchanged. The
encoder keeps 25% of the patch tokens per sample and rotates each kept token by its **original**
grid position: the cos/sin rows of the full grid are gathered with the kept indices, giving a
per-sample (B, N_keep, d_r/2) table (as the fork's ``mae.py:294-405`` does). As in the official
fork, the class token does not go through the encoder: it is prepended after the last block, only
because the stock decoder drops a leading token (``MAEPretrainDecoder`` treats position 0 as the
class token), then the final LayerNorm ``ln1`` is applied.

    image (B, 3, H, W) -> patch tokens (B, N, C) -> keep N/4 (random per sample)
      -> blocks with RoPE at the kept tokens' grid positions -> [cls] + tokens -> ln1
      -> (latent (B, 1 + N/4, C), mask (B, N) with 1 = removed, ids_restore (B, N))

FFN width. The fork computes the SwiGLU hidden width as
``round_up(int(feedforward_channels * 8/3), 256)`` from ViT's 4x ``feedforward_channels``
(3072 / 4096), i.e. **8192 (B) / 11008 (L)**, four times the LLaMA rule. The released checkpoints
and the paper's MAE numbers use it. Here the width is chosen by ``arch`` (the names are
:class:`VisionLLaMA`'s, so downstream configs use the same ``arch='mae-base'``):

    'mae-base' / 'mae-b'    768 x 12, 12 heads, hidden 8192   released width, 255.7M encoder
    'mae-large' / 'mae-l'   1024 x 24, 16 heads, hidden 11008 released width, 913.8M encoder
    'base' / 'large'        LLaMA rule, hidden 2048 / 2816    parameter-matched (~85.7M for B)

(or any dict with ``feedforward_channels`` = the hidden width itself). The fork's FFN Linears have
biases (``ffn_bias=True``) and no drop path (``ffn_drop_path=False``).
"""
from typing import Optional, Union

import torch
import torch.nn as nn

from ...engine.pretrained import split_pretrained
from ...registry import MODELS
from ..backbones.vision_llama import VisionLLaMA

__all__ = ['MAEVisionLLaMA']


@MODELS.register_module()
class MAEVisionLLaMA(VisionLLaMA):
    """VisionLLaMA encoder for MAE (the fork's ``MAELLaMA``).

    Args:
        arch: As :class:`VisionLLaMA`: the released MAE widths ``'mae-base'``/``'mae-b'`` and
            ``'mae-large'``/``'mae-l'`` (SwiGLU hidden 8192 / 11008); ``'base'`` and
            ``'large'`` follow the LLaMA rule (hidden 2048 / 2816). See the module docstring.
        mask_ratio: Fraction of patch tokens removed, per sample.
        ffn_bias: Biases in the SwiGLU Linears (True in the fork).
        ffn_drop_path: Stochastic depth on the FFN branch (False in the fork).
        out_type: Output of the unmasked forward (``mask=None``); ``'raw'`` as in the fork.
        with_cls_token: Must stay True: the stock decoder expects a leading token, and the
            released checkpoints have ``backbone.cls_token``.
        init_cfg: Defaults to the fork's effective MAE init (Xavier-uniform Linears, LayerNorm
            1/0), on top of which :meth:`init_weights` re-initialises the FFN biases, the patch
            embedding and the class token as the fork does.
        **kwargs: Other :class:`VisionLLaMA` arguments (``img_size``, ``patch_size``,
            ``drop_path_rate``, ``with_cp``...).

    ``forward(x, mask=True)`` returns ``(latent, mask, ids_restore)`` like mmpretrain's ``MAEViT``;
    ``forward(x, mask=None)`` (or ``False``) is the plain backbone on any input size, with the
    class token going through the blocks (the fork crashes there: its RoPE table has no row for it).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'mae-base',
                 mask_ratio: float = 0.75,
                 ffn_bias: bool = True,
                 ffn_drop_path: bool = False,
                 out_type: str = 'raw',
                 with_cls_token: bool = True,
                 init_cfg: Optional[Union[dict, list]] = None,
                 **kwargs):
        if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, (int, float)) \
                or not 0. < mask_ratio < 1.:
            raise ValueError(f'MAEVisionLLaMA: mask_ratio must be in (0, 1), got {mask_ratio}.')
        if not with_cls_token:
            raise ValueError('MAEVisionLLaMA: the stock MAEPretrainDecoder drops a leading token, '
                             'so with_cls_token must be True.')
        if init_cfg is None:
            init_cfg = [
                dict(type='Xavier', layer='Linear', distribution='uniform'),
                dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
            ]
        super().__init__(arch=arch, ffn_bias=ffn_bias, ffn_drop_path=ffn_drop_path,
                         out_type=out_type, with_cls_token=True, init_cfg=init_cfg, **kwargs)
        self.mask_ratio = mask_ratio
        self._check_kept(self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size,
                         f'img_size={self.img_size}')

    def _check_kept(self, h: int, w: int, where: str) -> None:
        """Refuse a mask ratio that keeps no token, or removes none (the MAE loss is a mean over
        the removed tokens: NaN), on an ``h x w`` patch grid."""
        keep = int(h * w * (1 - self.mask_ratio))
        if not 0 < keep < h * w:
            raise ValueError(
                f'MAEVisionLLaMA: mask_ratio={self.mask_ratio} keeps {keep} of the {h * w} patch '
                f'tokens ({h}x{w}) at {where}, so '
                f'{"no token is visible" if keep < 1 else "no token is masked (the loss is NaN)"}'
                f'; choose a ratio in (0, {1 - 1 / (h * w):.4g}].')

    def init_weights(self):
        super().init_weights()
        pretrained = bool(split_pretrained(self.init_cfg)[0])  # any Pretrained entry
        if pretrained:
            return
        # the fork's per-layer FFN re-init: Xavier weights, biases N(0, 1e-6)
        for layer in self.layers:
            for m in layer.ffn.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.normal_(m.bias, std=1e-6)
        # MAE's patch embedding: Xavier on the flattened conv weight; class token N(0, 0.02)
        w = self.patch_embed.projection.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=.02)

    def random_masking(self, x: torch.Tensor, mask_ratio: float = 0.75):
        """Per-sample random masking as mmpretrain's ``MAEViT.random_masking``.

        Args:
            x: Patch tokens (B, N, C) in raster order.
            mask_ratio: Fraction removed; ``int(N * (1 - mask_ratio))`` tokens are kept.

        Returns:
            ``(kept, mask, ids_restore, ids_keep)``: kept tokens (B, N_keep, C); mask (B, N),
            0 = kept, 1 = removed, in raster order; ``ids_restore`` (B, N) un-shuffles the
            decoder's [kept, mask tokens] sequence; ``ids_keep`` (B, N_keep) the raster indices of
            the kept tokens (their original grid positions).
        """
        B, N, C = x.shape
        len_keep = int(N * (1 - mask_ratio))
        noise = torch.rand(B, N, device=x.device)  # small = keep
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, C))
        mask = torch.ones(B, N, device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        return kept, mask, ids_restore, ids_keep

    def visible_rope(self, h: int, w: int, ids_keep: torch.Tensor):
        """RoPE tables of the kept tokens at their original positions on the ``h x w`` grid.

        Gathers the rows ``ids_keep`` (B, N_keep) of the grid's cached (h*w, d_r/2) cos/sin
        tables (no class-token row). Returns ``(cos, sin)``, each (B, N_keep, d_r/2), float32.
        """
        return self.rope.grid(h, w, device=ids_keep.device).rows(ids_keep)

    def forward(self, x: torch.Tensor, mask: Optional[bool] = True):
        """Masked encoding (``mask=True``) or the plain backbone (``mask=None``/``False``).

        Returns:
            With masking, ``(latent, mask, ids_restore)``: latent (B, 1 + N_keep, C) with the
            class token first and ``ln1`` applied; mask and ids_restore (B, N). Without masking,
            the tuple of :class:`VisionLLaMA` outputs.
        """
        if mask is None or mask is False:
            return super().forward(x)
        self.check_batch(x, 'MAEVisionLLaMA')
        B = x.shape[0]
        x, (h, w) = self.patch_embed(x)
        if (h, w) != (self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size):
            self._check_kept(h, w, f'an input of {h * self.patch_size}x{w * self.patch_size}')
        x, mask, ids_restore, ids_keep = self.random_masking(x, self.mask_ratio)
        rope = self.visible_rope(h, w, ids_keep)
        for layer in self.layers:
            x = self.run_block(layer, x, hw=(h, w), rope=rope)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)
        return self.ln1(x), mask, ids_restore
