"""Synthetic degradations of face images and the instruction text that describes them.

The model is the classical blind face restoration pipeline (GFPGAN, CodeFormer)::

    y = JPEG_q( (x ⊛ k_σ)↓r + n_δ )↑r

``k_σ`` is an isotropic or anisotropic (rotated) Gaussian kernel, ``↓r`` a bilinear downscale by ``r``,
``n_δ`` Gaussian noise with standard deviation ``δ`` (in /255 units), ``JPEG_q`` a JPEG round trip at
quality ``q``, and ``↑r`` the bicubic upscale back to the input size, so the LQ image always has the
HQ size (what the restorer and the "bicubic" baseline both start from).

Presets hold the papers' ranges, which are stated for 512×512 faces:

=========  ===============  ===============  ===============  ===========
preset     blur σ (512 px)  downscale r      noise δ (/255)   JPEG q
=========  ===============  ===============  ===============  ===========
gfpgan     0.1 – 10         0.8 – 8          0 – 20           60 – 100
heavy      1 – 15           4 – 30           0 – 20           30 – 80
=========  ===============  ===============  ===============  ===========

Mapping to another working resolution ``R`` (documented here because every draw depends on it):

* **blur**: σ is a length in pixels, so it scales with the image: ``σ_R = σ_512 · R / 512``. A 64-px
  face drawn with the gfpgan preset gets σ ∈ [0.0125, 1.25] pixels — the same blur relative to the face.
* **downscale**: ``r`` is a ratio and is kept, but the LQ side ``R / r`` is never allowed below
  ``MIN_LQ_SIDE = 16`` pixels (below that a face keeps no identity to restore, and at 64 px the heavy
  preset's r = 30 would leave a 2-pixel image). The upper bound becomes ``min(r_max, R / 16)`` and r is
  drawn uniformly from the clamped range. At 512 px nothing is clamped (512 / 16 = 32 ≥ 30), so the
  papers' ranges hold exactly there; at 64 px r ∈ [0.8, 4] for gfpgan and r = 4 for heavy.
* **noise** and **JPEG quality** act per pixel of the LQ image and are not rescaled.

Every draw is reproducible: ``sample_degradation(preset, seed=s, resolution=R)`` always returns the same
``DegradationParams``, and ``apply_degradation`` draws its noise from ``params.seed``, so the params alone
reproduce the LQ image bit for bit.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from restorer.images import face_crop_resize, pil_to_tensor, tensor_to_pil, to_uint8

REFERENCE_RESOLUTION = 512
MIN_LQ_SIDE = 16
ANISOTROPIC_PROBABILITY = 0.5


@dataclass(frozen=True)
class DegradationRanges:
    """Closed ranges for 512-px faces (see the module docstring for other resolutions)."""

    blur_sigma: tuple[float, float]
    downscale: tuple[float, float]
    noise_sigma: tuple[float, float]
    jpeg_quality: tuple[int, int]

    def at_resolution(self, resolution: int) -> DegradationRanges:
        """The ranges actually drawn from at ``resolution`` (σ in pixels of that resolution)."""
        scale = resolution / REFERENCE_RESOLUTION
        max_downscale = min(self.downscale[1], resolution / MIN_LQ_SIDE)
        min_downscale = min(self.downscale[0], max_downscale)
        return DegradationRanges(
            blur_sigma=(self.blur_sigma[0] * scale, self.blur_sigma[1] * scale),
            downscale=(min_downscale, max_downscale),
            noise_sigma=self.noise_sigma,
            jpeg_quality=self.jpeg_quality,
        )


PRESETS: dict[str, DegradationRanges] = {
    "gfpgan": DegradationRanges(
        blur_sigma=(0.1, 10.0), downscale=(0.8, 8.0), noise_sigma=(0.0, 20.0), jpeg_quality=(60, 100)
    ),
    "heavy": DegradationRanges(
        blur_sigma=(1.0, 15.0), downscale=(4.0, 30.0), noise_sigma=(0.0, 20.0), jpeg_quality=(30, 80)
    ),
}


@dataclass(frozen=True)
class DegradationParams:
    """One draw of the pipeline. σ in pixels at ``resolution``; ``noise_sigma`` in /255 units."""

    preset: str
    resolution: int
    blur_sigma_x: float
    blur_sigma_y: float
    blur_angle_deg: float
    downscale: float
    noise_sigma: float
    jpeg_quality: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DegradationParams:
        expected = {field.name for field in dataclasses.fields(cls)}
        missing = expected - set(data)
        unknown = set(data) - expected
        if missing or unknown:
            raise ValueError(
                f"not a DegradationParams dict: missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        return cls(
            preset=str(data["preset"]),
            resolution=int(data["resolution"]),
            blur_sigma_x=float(data["blur_sigma_x"]),
            blur_sigma_y=float(data["blur_sigma_y"]),
            blur_angle_deg=float(data["blur_angle_deg"]),
            downscale=float(data["downscale"]),
            noise_sigma=float(data["noise_sigma"]),
            jpeg_quality=int(data["jpeg_quality"]),
            seed=int(data["seed"]),
        )

    @property
    def lq_side(self) -> int:
        return max(1, round(self.resolution / self.downscale))


def _preset(name: str) -> DegradationRanges:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown degradation preset {name!r}; choose one of {sorted(PRESETS)}") from None


def sample_degradation(preset: str, *, seed: int, resolution: int) -> DegradationParams:
    """Draw the parameters of one degradation, reproducibly from ``seed``."""
    if resolution < MIN_LQ_SIDE:
        raise ValueError(f"resolution must be at least {MIN_LQ_SIDE} pixels, got {resolution}")
    ranges = _preset(preset).at_resolution(resolution)
    rng = np.random.default_rng(seed)
    anisotropic = rng.random() < ANISOTROPIC_PROBABILITY
    sigma_x = float(rng.uniform(*ranges.blur_sigma))
    sigma_y = float(rng.uniform(*ranges.blur_sigma)) if anisotropic else sigma_x
    angle = float(rng.uniform(0.0, 180.0)) if anisotropic else 0.0
    downscale = float(rng.uniform(*ranges.downscale))
    noise = float(rng.uniform(*ranges.noise_sigma))
    quality = int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1))
    return DegradationParams(
        preset=preset,
        resolution=resolution,
        blur_sigma_x=sigma_x,
        blur_sigma_y=sigma_y,
        blur_angle_deg=angle,
        downscale=downscale,
        noise_sigma=noise,
        jpeg_quality=quality,
        seed=seed,
    )


def gaussian_kernel(sigma_x: float, sigma_y: float, angle_deg: float) -> torch.Tensor:
    """Normalised (rotated) Gaussian kernel, odd size covering ±3σ; a delta when σ is negligible."""
    largest = max(sigma_x, sigma_y)
    if largest < 0.05:
        return torch.ones(1, 1)
    radius = max(1, math.ceil(3.0 * largest))
    coords = torch.arange(-radius, radius + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    theta = math.radians(angle_deg)
    u = math.cos(theta) * xx + math.sin(theta) * yy
    v = -math.sin(theta) * xx + math.cos(theta) * yy
    sx, sy = max(sigma_x, 1e-3), max(sigma_y, 1e-3)
    kernel = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return (kernel / kernel.sum()).float()


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    if kernel.numel() == 1:
        return x
    radius = kernel.shape[-1] // 2
    pad_mode = "reflect" if radius < min(x.shape[-2:]) else "replicate"
    padded = F.pad(x[None], (radius, radius, radius, radius), mode=pad_mode)
    weight = kernel.to(x.dtype)[None, None].repeat(3, 1, 1, 1)
    return F.conv2d(padded, weight, groups=3)[0]


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    buffer = io.BytesIO()
    tensor_to_pil(x).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return pil_to_tensor(Image.open(buffer))


def apply_degradation(hq: torch.Tensor, params: DegradationParams) -> torch.Tensor:
    """Degrade ``hq`` (``[3, R, R]`` in [-1, 1], R = ``params.resolution``); returns LQ at the same size."""
    if hq.dim() != 3 or hq.shape[0] != 3:
        raise ValueError(f"expected one image shaped [3, H, W], got {tuple(hq.shape)}")
    if hq.shape[1] != params.resolution or hq.shape[2] != params.resolution:
        raise ValueError(
            f"image is {hq.shape[2]}×{hq.shape[1]} but the params were drawn for "
            f"{params.resolution}×{params.resolution}: resize it first or draw params at its size"
        )
    x = hq.detach().float().cpu()
    x = _blur(x, gaussian_kernel(params.blur_sigma_x, params.blur_sigma_y, params.blur_angle_deg))
    lq_side = params.lq_side
    x = F.interpolate(x[None], size=(lq_side, lq_side), mode="bilinear", align_corners=False)[0]
    generator = torch.Generator().manual_seed(params.seed)
    # noise_sigma is in /255 units and images live in [-1, 1], a range of 2.
    x = x + torch.randn(x.shape, generator=generator) * (params.noise_sigma / 255.0 * 2.0)
    x = _jpeg(x, params.jpeg_quality)
    x = F.interpolate(x[None], size=hq.shape[1:], mode="bicubic", align_corners=False)[0]
    return x.clamp(-1.0, 1.0)


def degradation_linear_part(hq: torch.Tensor, params: DegradationParams) -> torch.Tensor:
    """The blur and the resizes of :func:`apply_degradation` without its noise and JPEG: differentiable in
    ``hq`` (``[3, R, R]``), for training signals that need a gradient through the degradation."""
    x = _blur(hq, gaussian_kernel(params.blur_sigma_x, params.blur_sigma_y, params.blur_angle_deg).to(hq))
    x = F.interpolate(x[None], size=(params.lq_side, params.lq_side), mode="bilinear", align_corners=False)
    return F.interpolate(x, size=hq.shape[1:], mode="bicubic", align_corners=False)[0]


def degrade_batch(
    hq: torch.Tensor, *, preset: str, seeds: Sequence[int]
) -> tuple[torch.Tensor, list[DegradationParams]]:
    """Degrade each image of ``[B, 3, R, R]`` with its own seed; returns the LQ batch and its params."""
    if hq.dim() != 4 or len(seeds) != hq.shape[0]:
        raise ValueError(
            f"need [B, 3, R, R] images and B seeds, got {tuple(hq.shape)} and {len(seeds)} seeds"
        )
    resolution = hq.shape[-1]
    params = [sample_degradation(preset, seed=int(seed), resolution=resolution) for seed in seeds]
    lq = torch.stack([apply_degradation(image, p) for image, p in zip(hq, params)])
    return lq, params


def degrade_image(
    hq: Image.Image, *, preset: str = "gfpgan", seed: int, resolution: int
) -> tuple[Image.Image, DegradationParams]:
    """Face-centred crop + resize of ``hq`` to ``resolution``, then one seeded degradation."""
    resized = pil_to_tensor(face_crop_resize(hq, resolution))
    params = sample_degradation(preset, seed=seed, resolution=resolution)
    lq = apply_degradation(resized, params)
    return Image.fromarray(to_uint8(lq).permute(1, 2, 0).numpy(), mode="RGB"), params


def _blur_words(sigma_512: float, anisotropic: bool) -> str:
    if sigma_512 < 1.0:
        words = "no blur"
    elif sigma_512 < 3.0:
        words = "slight blur"
    elif sigma_512 < 6.0:
        words = "moderate blur"
    elif sigma_512 < 10.0:
        words = "strong blur"
    else:
        words = "severe blur"
    if anisotropic and sigma_512 >= 1.0:
        words = "directional " + words
    return words


def _noise_words(noise_sigma: float) -> str:
    if noise_sigma < 3.0:
        return "no noise"
    if noise_sigma < 8.0:
        return "slightly noisy"
    if noise_sigma < 14.0:
        return "noisy"
    return "very noisy"


def _jpeg_words(quality: int) -> str:
    if quality >= 90:
        return "light jpeg"
    if quality >= 75:
        return "moderate jpeg"
    if quality >= 55:
        return "heavy jpeg"
    return "severe jpeg"


def instruction_text(params: DegradationParams, extra: str = "") -> str:
    """Plain-words description of the degradation, plus the user's free text when there is any.

    e.g. ``"strong blur, 6x downsampled, noisy, heavy jpeg; restore the face, keep the identity"``.
    Blur is described in 512-px-equivalent σ so the words mean the same at every resolution.
    """
    scale = params.resolution / REFERENCE_RESOLUTION
    sigma_512 = max(params.blur_sigma_x, params.blur_sigma_y) / scale
    anisotropic = abs(params.blur_sigma_x - params.blur_sigma_y) > 0.25 * max(params.blur_sigma_x, 1e-6)
    downscale = "not downsampled" if params.downscale < 1.5 else f"{round(params.downscale)}x downsampled"
    parts = [
        _blur_words(sigma_512, anisotropic),
        downscale,
        _noise_words(params.noise_sigma),
        _jpeg_words(params.jpeg_quality),
    ]
    text = ", ".join(parts) + "; restore the face, keep the identity"
    extra = " ".join(extra.split())
    return f"{text}; {extra}" if extra else text
