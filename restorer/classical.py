"""The classical (non-learned) restoration shown beside the model's candidates.

Bicubic down- then up-sampling smooths JPEG blocks and noise; an unsharp mask then brings edges back.
It is labelled "classical" wherever it is shown: it is a reference point, not a restorer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from restorer.degradations import gaussian_kernel


def classical_restore(
    lq: torch.Tensor, *, sharpen: float = 0.6, smoothing_factor: float = 2.0, unsharp_sigma: float = 1.0
) -> torch.Tensor:
    """``[B, 3, H, W]`` in [-1, 1] -> same shape: bicubic down/up by ``smoothing_factor`` + unsharp mask."""
    if lq.dim() != 4 or lq.shape[1] != 3:
        raise ValueError(f"expected a batch shaped [B, 3, H, W], got {tuple(lq.shape)}")
    if sharpen < 0:
        raise ValueError(f"sharpen must be >= 0, got {sharpen}")
    height, width = lq.shape[-2:]
    small = (max(1, round(height / smoothing_factor)), max(1, round(width / smoothing_factor)))
    x = F.interpolate(lq.float(), size=small, mode="bicubic", align_corners=False, antialias=True)
    x = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)
    return unsharp_mask(x, sharpen, sigma=unsharp_sigma).clamp(-1.0, 1.0)


def unsharp_mask(x: torch.Tensor, amount: float | torch.Tensor, *, sigma: float = 1.0) -> torch.Tensor:
    """``x + amount * (x - gaussian_blur(x))`` for ``[B, 3, H, W]``, not clamped; a negative amount softens.

    ``amount`` is a number or a tensor that broadcasts against ``x`` (e.g. ``[B, 1, 1, 1]``, one per image).
    """
    height, width = x.shape[-2:]
    kernel = gaussian_kernel(sigma, sigma, 0.0).to(x)
    radius = kernel.shape[-1] // 2
    pad_mode = "reflect" if radius < min(height, width) else "replicate"
    blurred = F.conv2d(
        F.pad(x, (radius,) * 4, mode=pad_mode), kernel[None, None].repeat(3, 1, 1, 1), groups=3
    )
    return x + amount * (x - blurred)
