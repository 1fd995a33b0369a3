"""mmcv's patch embedding with the checks a plain (non-dense) backbone wants: a bad patch size
or an input it cannot tile is refused with the owner's name instead of being cropped."""
from typing import Tuple

import torch
from mmcv.cnn.bricks.transformer import PatchEmbed as MMCVPatchEmbed

__all__ = ['PatchEmbed']


class PatchEmbed(MMCVPatchEmbed):
    """``mmcv.cnn.bricks.transformer.PatchEmbed`` (Conv k = s = P, optional LayerNorm; state-dict
    keys ``projection.*`` / ``norm.*``) that names its owner in errors.

    Args:
        in_channels: Image channels.
        embed_dims: Output channels C.
        patch_size: Patch side P (a positive int).
        norm: Apply LayerNorm(C, eps=norm_eps) to the tokens (pyramid models).
        norm_eps: LayerNorm epsilon.
        pad: Zero-pad the right and bottom of an input not divisible by P (mmcv's
            ``AdaptivePadding(padding='corner')``), giving a ceil(H/P) x ceil(W/P) grid; if
            False, such an input is refused with a clear error (classification) where mmcv's
            convolution would silently drop the last rows and columns.
        owner: Name used in error messages.

    Shapes:
        (B, in_channels, H, W) -> tokens (B, h * w, C) and the grid ``(h, w)``.
    """

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int, norm: bool = False,
                 norm_eps: float = 1e-5, pad: bool = False, owner: str = 'PatchEmbed'):
        if not isinstance(patch_size, int) or isinstance(patch_size, bool) or patch_size < 1:
            raise ValueError(f'{owner}: patch_size must be a positive int, got {patch_size!r}.')
        super().__init__(in_channels, embed_dims, kernel_size=patch_size, stride=patch_size,
                         padding='corner' if pad else 0,
                         norm_cfg=dict(type='LN', eps=norm_eps) if norm else None)
        self.patch_size = patch_size
        self.pad = pad
        self.owner = owner

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        if x.dim() != 4:
            raise ValueError(f'{self.owner}: expected an image batch (B, C, H, W), got shape '
                             f'{tuple(x.shape)}.')
        H, W = x.shape[-2:]
        P = self.patch_size
        if not self.pad and (H % P or W % P):
            raise ValueError(
                f'{self.owner}: input size {H}x{W} is not divisible by the patch size {P}; '
                f'resize or pad the image to a multiple of {P} (e.g. pad_size_divisor={P}).')
        return super().forward(x)
