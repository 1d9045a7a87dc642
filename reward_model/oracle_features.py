"""An oracle utility no other part of the platform computes: identity, sharpness and local artifacts.

``IdentitySharpnessScore`` (``.name == "identity_sharpness"``) is a *badness* of a candidate ``x`` against the HQ
original ``hq`` (0 for the HQ itself, higher is worse), in the same ``(x, hq) -> [B]`` form as a perceptual
distance, so ``reward_model.oracle.OracleAnnotator`` judges with it unchanged::

    score(x, hq) = identity(x, hq) + 0.35 * sharpness(x, hq) + 2.5 * artifact(x, hq)

- **identity**: Euclidean distance between the 128-D face descriptors of ``x`` and ``hq`` by dlib's face
  recognition ResNet (``dlib_face_recognition_resnet_model_v1``, trained on ~3M faces; shipped by the
  ``face_recognition_models`` package, run by ``dlib``, no download). Units: dlib's descriptor distance, where
  0.6 is dlib's same-person threshold. Both images are upsampled (bicubic) until their short side is at least
  ``min_embedding_side`` px, the 68 landmarks are found **on the HQ only** (the whole crop is the face box: the
  inputs are face crops) and that one alignment cuts the 150-px chip of every candidate, so a degraded
  candidate cannot move its own landmarks: what differs is the face, not the crop.
- **sharpness**: mean over two band-pass bands of luma (``y - G_1 y`` and ``G_1 y - G_2 y``, ``G_s`` a Gaussian
  blur of σ = s px) of ``|ln((E_x + ε) / (E_hq + ε))|``, ``E`` the band's mean squared response, ε = 1e-5.
  Units: nats of band energy. A blur lowers the energy and an over-sharpening or noise raises it: both are
  penalised, symmetrically in log.
- **artifact**: the worst local band-pass error: the RMS of ``Σ_bands (band(x) - band(hq))²`` over 8×8 windows
  (stride 4), mean of the worst 5 % of windows. Units: luma RMS on the [-1, 1] scale. Halos, ringing, noise
  blobs and JPEG blocks are local and high-frequency; a global mean would dilute them.

Weights: chosen so that between the HQ (score 0) and its ``gfpgan``-degraded LQ (bicubic back to 64 px; score
≈ 1) identity carries about half of the rise and sharpness and artifact a quarter each (measured on 32 synthetic
test faces: identity 0.50, sharpness 0.73 nats, artifact 0.10 there). Orders, measured on those faces (mean
score): HQ 0 < noise σ 0.02 (0.15) < mild blur σ 0.6 (0.40) < JPEG q30 (0.53) < blur σ 1 (0.82) < LQ gfpgan /
classical restoration (≈ 1.0) < LQ heavy (1.55); ``benchmarks/oracle_independence.py`` prints it again.

As an annotator (``reward_model.oracle.OracleAnnotator(kind, distance="identity_sharpness")``) the defaults are
temperature 0.07, tie margin 0.01 and both-bad threshold 1.25 in these units (``DEFAULTS_BY_DISTANCE`` says how
they were chosen: ~88 % agreement of a reliable annotator with its noise-free preference, ~2 % ties). Cost on
a 2-core CPU: ~0.1 s per 64-px candidate (the descriptor network at 150 px dominates).

Why these functions: none of them is what RL optimises or what the reward model sees. The RL's fixed terms are
a re-degradation MSE against the LQ (blind to the high frequencies these terms weigh), KL, agreement between
samples, and LPIPS heads on random AlexNet trunks; the reward model sees the LQ and the candidate only (no HQ);
the guard's held-out evaluator is a random-trunk LPIPS distance. The face descriptor is not differentiable
(dlib, not torch) and is computed from the HQ, which RL never receives except through this oracle's judgments.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

IDENTITY_SHARPNESS = "identity_sharpness"
FACE_CHIP_SIZE = 150  # what dlib's descriptor network was trained on
FACE_CHIP_PADDING = 0.25  # dlib's default chip padding (the face plus a margin)
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, what "brightness" means for a person looking at a face
INSTALL_HINT = "pip install dlib-bin face_recognition_models (both are dependencies in pyproject.toml)"


class OracleFeaturesUnavailableError(ImportError):
    """dlib or the face recognition models are missing: the identity oracle cannot judge."""


@dataclass(frozen=True)
class IdentitySharpnessConfig:
    """The score's definition (module docstring); the defaults are the oracle that the defaults of
    ``reward_model.oracle.DEFAULTS_BY_DISTANCE["identity_sharpness"]`` were calibrated on."""

    identity_weight: float = 1.0
    sharpness_weight: float = 0.35
    artifact_weight: float = 2.5
    min_embedding_side: int = 256  # 64-px crops are upsampled 4x: the landmark model needs more than 64 px
    band_sigmas: tuple[float, ...] = (1.0, 2.0)  # band i lies between blurs of σ band_sigmas[i-1] and [i]
    energy_floor: float = 1e-5  # keeps the log ratio finite on flat images
    artifact_window: int = 8
    artifact_worst_share: float = 0.05
    reference_cache_size: int = 512  # HQ alignments + descriptors kept: annotators judge many pairs per HQ

    def __post_init__(self) -> None:
        if min(self.identity_weight, self.sharpness_weight, self.artifact_weight) < 0:
            raise ValueError("weights must be non-negative")
        if not self.band_sigmas or any(s <= 0 for s in self.band_sigmas):
            raise ValueError(f"band_sigmas must be positive, got {self.band_sigmas}")
        if not 0 < self.artifact_worst_share <= 1:
            raise ValueError(f"artifact_worst_share must be in (0, 1], got {self.artifact_worst_share}")
        if self.artifact_window < 2 or self.min_embedding_side < 1:
            raise ValueError("artifact_window must be >= 2 and min_embedding_side >= 1")


# ---------------------------------------------------------------- handcrafted terms (torch, batched)


def _gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``[B, C, H, W]`` with reflect padding (replicate when the image is tiny)."""
    radius = max(1, math.ceil(3 * sigma))
    coords = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    mode = "reflect" if radius < min(images.shape[-2:]) else "replicate"
    x = F.pad(images, (radius, radius, 0, 0), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    x = F.pad(x, (0, 0, radius, radius), mode=mode)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def luma(images: Tensor) -> Tensor:
    """``[B, 3, H, W]`` -> ``[B, 1, H, W]`` (BT.601 weights)."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def band_pass(images: Tensor, sigmas: tuple[float, ...] = (1.0, 2.0)) -> list[Tensor]:
    """Luma bands ``[y - G_s1 y, G_s1 y - G_s2 y, ...]``, each ``[B, 1, H, W]``: fine detail first."""
    y = luma(images.float())
    levels = [y] + [_gaussian_blur(y, sigma) for sigma in sigmas]
    return [finer - coarser for finer, coarser in zip(levels, levels[1:])]


def sharpness_mismatch(x: Tensor, hq: Tensor, config: IdentitySharpnessConfig | None = None) -> Tensor:
    """``[B]`` mean over bands of |ln(band energy of x / band energy of hq)| (nats); 0 at the HQ's sharpness."""
    config = config or IdentitySharpnessConfig()
    terms = []
    for band_x, band_hq in zip(band_pass(x, config.band_sigmas), band_pass(hq, config.band_sigmas)):
        energy_x = band_x.pow(2).flatten(1).mean(dim=1)
        energy_hq = band_hq.pow(2).flatten(1).mean(dim=1)
        terms.append(torch.log((energy_x + config.energy_floor) / (energy_hq + config.energy_floor)).abs())
    return torch.stack(terms).mean(dim=0)


def local_artifact(x: Tensor, hq: Tensor, config: IdentitySharpnessConfig | None = None) -> Tensor:
    """``[B]`` mean band-pass RMS error of the worst ``artifact_worst_share`` of windows (luma, [-1, 1] scale)."""
    config = config or IdentitySharpnessConfig()
    error = sum(
        (band_x - band_hq).pow(2)
        for band_x, band_hq in zip(band_pass(x, config.band_sigmas), band_pass(hq, config.band_sigmas))
    )
    assert isinstance(error, Tensor)
    window = min(config.artifact_window, *x.shape[-2:])
    per_window = F.avg_pool2d(error, window, stride=max(1, window // 2)).flatten(1).sqrt()
    worst = max(1, round(config.artifact_worst_share * per_window.shape[1]))
    return per_window.topk(worst, dim=1).values.mean(dim=1)


# ---------------------------------------------------------------- identity (dlib)


@dataclass(frozen=True)
class _DlibModels:
    dlib: Any
    landmarks: Any  # dlib.shape_predictor, 68 points
    descriptor: Any  # dlib.face_recognition_model_v1


def face_models_folder() -> Path:
    """The ``models`` folder of ``face_recognition_models``, found without importing the package: its
    ``__init__`` imports ``pkg_resources``, which setuptools >= 81 no longer ships (measured: it fails to import
    beside this venv's setuptools 84), and only the files are needed."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise OracleFeaturesUnavailableError(f"face_recognition_models is not installed: {INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    if not folder.is_dir():
        raise OracleFeaturesUnavailableError(f"no models folder in {folder.parent}: {INSTALL_HINT}")
    return folder


@functools.cache
def _dlib_models() -> _DlibModels:
    try:
        import dlib
    except ImportError as error:
        raise OracleFeaturesUnavailableError(f"dlib is not installed: {INSTALL_HINT}") from error
    folder = face_models_folder()
    return _DlibModels(
        dlib=dlib,
        landmarks=dlib.shape_predictor(str(folder / "shape_predictor_68_face_landmarks.dat")),
        descriptor=dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")),
    )


def _as_uint8_hwc(image: Tensor, min_side: int) -> np.ndarray:
    """``[3, H, W]`` in [-1, 1] -> contiguous uint8 ``[H', W', 3]``, bicubic-upsampled to a short side >= min_side."""
    image = image.detach().float().cpu()
    factor = max(1, math.ceil(min_side / min(image.shape[-2:])))
    if factor > 1:
        image = F.interpolate(image[None], scale_factor=factor, mode="bicubic", align_corners=False)[0]
    pixels = ((image.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(1, 2, 0).numpy())


class FaceIdentity:
    """Descriptor distances of candidates to their HQ under the HQ's own alignment (module docstring)."""

    def __init__(self, config: IdentitySharpnessConfig | None = None) -> None:
        self.config = config or IdentitySharpnessConfig()
        self._models = _dlib_models()
        self._references: OrderedDict[bytes, tuple[Any, np.ndarray]] = OrderedDict()

    def _chips(self, images: list[np.ndarray], alignment: Any) -> list[np.ndarray]:
        dlib = self._models.dlib
        return [
            dlib.get_face_chip(image, alignment, size=FACE_CHIP_SIZE, padding=FACE_CHIP_PADDING)
            for image in images
        ]

    def _describe(self, chips: list[np.ndarray]) -> np.ndarray:
        return np.asarray([np.asarray(d) for d in self._models.descriptor.compute_face_descriptor(chips)])

    def reference(self, hq: Tensor) -> tuple[Any, np.ndarray]:
        """(68-landmark alignment, descriptor) of one HQ ``[3, H, W]``, cached by its 8-bit pixels."""
        pixels = _as_uint8_hwc(hq, self.config.min_embedding_side)
        key = hashlib.sha1(pixels.tobytes() + str(pixels.shape).encode()).digest()
        if key in self._references:
            self._references.move_to_end(key)
            return self._references[key]
        height, width = pixels.shape[:2]
        face_box = self._models.dlib.rectangle(0, 0, width - 1, height - 1)  # the crop is the face
        alignment = self._models.landmarks(pixels, face_box)
        entry = (alignment, self._describe(self._chips([pixels], alignment))[0])
        self._references[key] = entry
        while len(self._references) > self.config.reference_cache_size:
            self._references.popitem(last=False)
        return entry

    def __call__(self, x: Tensor, hq: Tensor) -> Tensor:
        """``[B]`` descriptor distances of ``x[i]`` to ``hq[i]`` (both ``[B, 3, H, W]`` in [-1, 1])."""
        distances = torch.empty(x.shape[0])
        # Rows that share an HQ (the two candidates of a pair, a group of samples) share one alignment and
        # one batched descriptor call.
        groups: dict[int, tuple[Any, np.ndarray, list[int]]] = {}
        for row in range(x.shape[0]):
            alignment, descriptor = self.reference(hq[row])
            groups.setdefault(id(descriptor), (alignment, descriptor, []))[2].append(row)
        for alignment, descriptor, rows in groups.values():
            images = [_as_uint8_hwc(x[row], self.config.min_embedding_side) for row in rows]
            found = self._describe(self._chips(images, alignment))
            distances[rows] = torch.from_numpy(np.linalg.norm(found - descriptor, axis=1)).float()
        return distances


# ---------------------------------------------------------------- the oracle's score


class IdentitySharpnessScore:
    """``score(x, hq)`` ``[B]``: identity + 0.35 sharpness + 2.5 artifact (module docstring). Not differentiable."""

    name = IDENTITY_SHARPNESS

    def __init__(self, config: IdentitySharpnessConfig | None = None) -> None:
        self.config = config or IdentitySharpnessConfig()
        self.identity = FaceIdentity(self.config)

    def components(self, x: Tensor, hq: Tensor) -> dict[str, Tensor]:
        """The three unweighted terms, each ``[B]``."""
        if x.shape != hq.shape or x.dim() != 4:
            raise ValueError(
                f"need two batches of the same shape [B, 3, H, W], got {tuple(x.shape)} and {tuple(hq.shape)}"
            )
        with torch.no_grad():
            x, hq = x.detach().float().cpu(), hq.detach().float().cpu()
            return {
                "identity": self.identity(x, hq),
                "sharpness": sharpness_mismatch(x, hq, self.config),
                "artifact": local_artifact(x, hq, self.config),
            }

    def combine(self, components: dict[str, Tensor]) -> Tensor:
        return (
            self.config.identity_weight * components["identity"]
            + self.config.sharpness_weight * components["sharpness"]
            + self.config.artifact_weight * components["artifact"]
        )

    def __call__(self, x: Tensor, hq: Tensor) -> Tensor:
        return self.combine(self.components(x, hq))
