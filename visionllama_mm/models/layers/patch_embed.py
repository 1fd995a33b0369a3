"""Non-overlapping patch embedding: refuses inputs it cannot tile, or pads them (dense tasks)."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['PatchEmbed']


class PatchEmbed(nn.Module):
    """Conv(k = s = patch_size) patch embedding with an optional LayerNorm.

    Args:
        in_channels: Image channels.
        embed_dims: Output channels C.
        patch_size: Patch side P (a positive int).
        norm: Apply LayerNorm(C, eps=norm_eps) to the tokens (pyramid models).
        norm_eps: LayerNorm epsilon.
        pad: Zero-pad the right and bottom of an input not divisible by P (as mmcv's
            ``AdaptivePadding(padding='corner')``), giving a ceil(H/P) x ceil(W/P) grid; if
            False, such an input is refused with a clear error (classification).
        owner: Name used in error messages.

    Shapes:
        (B, in_channels, H, W) -> tokens (B, h * w, C) and the grid ``(h, w)``.
    """

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int, norm: bool = False,
                 norm_eps: float = 1e-5, pad: bool = False, owner: str = 'PatchEmbed'):
        super().__init__()
        if not isinstance(patch_size, int) or isinstance(patch_size, bool) or patch_size < 1:
            raise ValueError(f'{owner}: patch_size must be a positive int, got {patch_size!r}.')
        self.patch_size = patch_size
        self.pad = pad
        self.owner = owner
        self.projection = nn.Conv2d(in_channels, embed_dims, patch_size, stride=patch_size)
        self.norm: Optional[nn.Module] = nn.LayerNorm(embed_dims, eps=norm_eps) if norm else None

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        if x.dim() != 4:
            raise ValueError(f'{self.owner}: expected an image batch (B, C, H, W), got shape '
                             f'{tuple(x.shape)}.')
        H, W = x.shape[-2:]
        P = self.patch_size
        if H % P or W % P:
            if not self.pad:
                raise ValueError(
                    f'{self.owner}: input size {H}x{W} is not divisible by the patch size {P}; '
                    f'resize or pad the image to a multiple of {P} (e.g. pad_size_divisor={P}).')
            x = F.pad(x, (0, -W % P, 0, -H % P))
        x = self.projection(x)
        hw = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return x, hw
