"""MAE pre-training with a VisionLLaMA encoder (spec §1.3, §5).

Reuses mmpretrain's ``MAE`` algorithm, ``MAEPretrainDecoder`` and ``MAEPretrainHead`` unchanged. The
encoder keeps 25% of the patch tokens per sample and rotates each kept token by its **original**
grid position: the cos/sin rows of the full grid are gathered with the kept indices, giving a
per-sample (B, N_keep, d_r/2) table. As in the official fork, the class token does not go through
the encoder: it is prepended after the last block (the stock decoder expects a leading token),
then the final LayerNorm is applied.

    image (B, 3, H, W) -> patch tokens (B, N, C) -> keep N/4 (random per sample)
      -> blocks with RoPE at the kept tokens' grid positions -> [cls] + tokens -> ln1
      -> (latent (B, 1 + N/4, C), mask (B, N), ids_restore (B, N))
"""
from typing import Optional, Tuple, Union

import torch

from ...registry import MODELS
from ..backbones.vision_llama import VisionLLaMA

__all__ = ['MAEVisionLLaMA', 'convert_official_mae']


@MODELS.register_module()
class MAEVisionLLaMA(VisionLLaMA):
    """VisionLLaMA encoder for MAE.

    Args:
        arch: As :class:`VisionLLaMA`, plus the MAE widths: ``'mae-base'``/``'mae-b'`` and
            ``'mae-large'``/``'mae-l'`` are the **released** models, whose SwiGLU is 4x wider than
            the LLaMA rule (hidden 8192 / 11008, spec Q1; 255.7M-parameter B encoder), while
            ``'base'``/``'large'`` follow the LLaMA rule (hidden 2048 / 2816).
        mask_ratio: Fraction of patch tokens removed.
        ffn_bias: Biases in the SwiGLU Linears (True in the fork).
        ffn_drop_path: Stochastic depth on the FFN branch (False in the fork, spec Q3).
        **kwargs: Other :class:`VisionLLaMA` arguments.

    ``forward(x, mask=True)`` returns ``(latent, mask, ids_restore)`` like mmpretrain's ``MAEViT``;
    ``forward(x, mask=None)`` is the plain backbone (any input size).
    """

    arch_zoo = {
        **VisionLLaMA.arch_zoo,
        **dict.fromkeys(['mae-b', 'mae-base'], dict(
            embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=8192)),
        **dict.fromkeys(['mae-l', 'mae-large'], dict(
            embed_dims=1024, num_layers=24, num_heads=16, feedforward_channels=11008)),
    }

    def __init__(self, arch: Union[str, dict] = 'mae-base', mask_ratio: float = 0.75,
                 ffn_bias: bool = True, ffn_drop_path: bool = False, out_type: str = 'raw',
                 init_cfg: Optional[dict] = None, **kwargs):
        if not 0. < mask_ratio < 1.:
            raise ValueError(f'MAEVisionLLaMA: mask_ratio must be in (0, 1), got {mask_ratio}.')
        kwargs.setdefault('with_cls_token', True)
        super().__init__(arch=arch, ffn_bias=ffn_bias, ffn_drop_path=ffn_drop_path,
                         out_type=out_type, init_cfg=init_cfg, **kwargs)
        if not self.with_cls_token:
            raise ValueError('MAEVisionLLaMA: the stock MAE decoder needs with_cls_token=True.')
        self.mask_ratio = mask_ratio

    def init_weights(self):
        super().init_weights()
        pretrained = isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'
        if not pretrained:  # the fork's MAE init: Xavier on the flattened patch-embed weight
            w = self.patch_embed.projection.weight.data
            torch.nn.init.xavier_uniform_(w.view(w.shape[0], -1))
            torch.nn.init.normal_(self.cls_token, std=.02)

    def random_masking(self, x: torch.Tensor, mask_ratio: float):
        """Per-sample random keep: (B, N, C) -> kept tokens, mask (1 = removed), ids_restore,
        ids_keep (B, N_keep)."""
        B, N, C = x.shape
        len_keep = int(N * (1 - mask_ratio))
        noise = torch.rand(B, N, device=x.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, C))
        mask = torch.ones(B, N, device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        return kept, mask, ids_restore, ids_keep

    def visible_rope(self, h: int, w: int, ids_keep: torch.Tensor):
        """Per-sample RoPE tables of the kept tokens at their original grid positions.

        Returns ``(cos, sin)``, each (B, N_keep, d_r/2).
        """
        cos, sin = self.rope(h, w, device=ids_keep.device)  # patch grid only, no class token
        return cos[ids_keep], sin[ids_keep]

    def forward(self, x: torch.Tensor, mask: Optional[bool] = True):
        if mask is None or mask is False:
            return super().forward(x)
        B = x.shape[0]
        x, (h, w) = self.patch_embed(x)
        x, mask, ids_restore, ids_keep = self.random_masking(x, self.mask_ratio)
        rope = self.visible_rope(h, w, ids_keep)
        for layer in self.layers:
            if self.with_cp and self.training and x.requires_grad:
                x = torch.utils.checkpoint.checkpoint(layer, x, rope, (h, w),
                                                      use_reentrant=False)
            else:
                x = layer(x, rope, (h, w))
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)
        return self.ln1(x), mask, ids_restore


def convert_official_mae(state_dict):
    """Official mmpretrain-fork checkpoint (MAE pre-training or fine-tuning) -> our keys.

    The fork's names already match ours (``backbone.layers.i.{ln1,attn.qkv,attn.proj,ln2,ffn.w12,
    ffn.w3}``, ``backbone.ln1``/``ln2``, ``neck.*``, ``head.*``); its ``backbone.pos_embed`` is a
    frozen parameter that is never added (spec §1.3, Q12) and is dropped. Nothing else is touched.
    """
    return {k: v for k, v in state_dict.items() if k != 'backbone.pos_embed'}
