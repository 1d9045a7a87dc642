"""Conversions between PIL images and the tensors the ML packages use.

Inside ``restorer``, ``reward_model`` and ``rl_trainer`` an image is a ``torch.float32`` tensor shaped
``[3, H, W]`` (or ``[B, 3, H, W]``) with values in ``[-1, 1]``. These helpers are the only place where
that convention meets PIL / PNG bytes, so the web app and the training code agree on it.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image (any mode) -> float32 tensor ``[3, H, W]`` in ``[-1, 1]``."""
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous() / 127.5 - 1.0


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """Tensor ``[3, H, W]`` (or ``[1, 3, H, W]``) in ``[-1, 1]`` -> RGB PIL image (values clamped)."""
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected an image tensor shaped [3, H, W], got {tuple(t.shape)}")
    as_uint8 = to_uint8(t.detach().float().cpu())
    return Image.fromarray(as_uint8.permute(1, 2, 0).numpy(), mode="RGB")


def to_uint8(t: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` float -> uint8 with round-to-nearest (the quantisation a PNG applies)."""
    return ((t.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


def quantize(t: torch.Tensor) -> torch.Tensor:
    """Round a ``[-1, 1]`` tensor to the 256 levels a saved PNG can hold (stays float)."""
    return to_uint8(t).float() / 127.5 - 1.0


def png_bytes(t: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    tensor_to_pil(t).save(buffer, format="PNG")
    return buffer.getvalue()


def center_square_crop(img: Image.Image) -> Image.Image:
    """Largest centred square: face datasets (FFHQ, CelebA-HQ, aligned LFW) put the face in the middle."""
    width, height = img.size
    side = min(width, height)
    left = (width - side) // 2
    top = (height - side) // 2
    return img.crop((left, top, left + side, top + side))


def face_crop_resize(img: Image.Image, resolution: int) -> Image.Image:
    """Face-centred square crop, then resize to ``resolution`` (Lanczos down, bicubic up)."""
    if resolution < 8:
        raise ValueError(f"resolution must be at least 8 pixels, got {resolution}")
    square = center_square_crop(img.convert("RGB"))
    if square.size[0] == resolution:
        return square
    resample = Image.Resampling.LANCZOS if square.size[0] > resolution else Image.Resampling.BICUBIC
    return square.resize((resolution, resolution), resample=resample)


def resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize of ``[B, 3, H, W]`` to ``size``×``size`` with antialiasing when shrinking."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    shrinking = size < min(x.shape[-2:])
    return torch.nn.functional.interpolate(
        x, size=(size, size), mode="bicubic", align_corners=False, antialias=shrinking
    )
