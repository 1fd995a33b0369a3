"""Window partition helpers for windowed attention (ViTDet-style plain backbones, LSA)."""
from typing import Tuple

import torch
import torch.nn.functional as F

__all__ = ['window_partition', 'window_unpartition']


def window_partition(x: torch.Tensor, hw: Tuple[int, int],
                     window_size: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Split raster tokens into non-overlapping windows, zero-padding the right and bottom.

    Args:
        x: (B, H*W, C) tokens in raster order.
        hw: The grid (H, W).
        window_size: Window side ws.

    Returns:
        Windows (B * nW, ws*ws, C) and the padded grid (Hp, Wp). Padded tokens are zeros (no mask,
        as in ViTDet and Twins).
    """
    B, N, C = x.shape
    H, W = hw
    ws = window_size
    x = x.view(B, H, W, C)
    pad_h, pad_w = (-H) % ws, (-W) % ws
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    Hp, Wp = H + pad_h, W + pad_w
    x = x.view(B, Hp // ws, ws, Wp // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, C), (Hp, Wp)


def window_unpartition(windows: torch.Tensor, hw: Tuple[int, int], padded_hw: Tuple[int, int],
                       window_size: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws*ws, C) -> (B, H*W, C), padding cropped."""
    H, W = hw
    Hp, Wp = padded_hw
    ws = window_size
    C = windows.shape[-1]
    B = windows.shape[0] // ((Hp // ws) * (Wp // ws))
    x = windows.view(B, Hp // ws, Wp // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    x = x.reshape(B, Hp, Wp, C)
    if Hp != H or Wp != W:
        x = x[:, :H, :W]
    return x.reshape(B, H * W, C)
