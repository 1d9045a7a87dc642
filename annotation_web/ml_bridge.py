"""The one module through which the web reaches the ML packages (restorer, reward_model, rl_trainer).

It speaks PNG bytes and plain dicts to the web side and tensors to the ML side, so views, services and
tasks never import torch or the ML packages themselves.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

CLASSICAL_SHARPEN_LEVELS = (0.0, 0.6, 1.5)


@dataclass(frozen=True)
class DegradedFace:
    hq_png: bytes
    lq_png: bytes
    degradation: dict
    instruction: str


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def degrade_face(
    image: Image.Image, *, preset: str, seed: int, resolution: int, extra_instruction: str = ""
) -> DegradedFace:
    from restorer.degradations import degrade_image, instruction_text
    from restorer.images import face_crop_resize

    hq = face_crop_resize(image.convert("RGB"), resolution)
    lq, params = degrade_image(hq, preset=preset, seed=seed, resolution=resolution)
    return DegradedFace(
        hq_png=_png(hq),
        lq_png=_png(lq),
        degradation=params.to_dict(),
        instruction=instruction_text(params, extra_instruction),
    )


def heavily_degraded_png(hq_png: bytes, *, seed: int, resolution: int) -> bytes:
    """A copy of the HQ under the `heavy` preset: the clearly worse side of a gold pair."""
    from restorer.degradations import degrade_image

    lq, _ = degrade_image(Image.open(io.BytesIO(hq_png)), preset="heavy", seed=seed, resolution=resolution)
    return _png(lq)


def classical_restorations_png(
    lq_png: bytes, *, sharpen_levels=CLASSICAL_SHARPEN_LEVELS
) -> list[tuple[float, bytes]]:
    """Bicubic smoothing + unsharp mask at several strengths: the demo's candidates before a restorer exists."""
    from restorer.classical import classical_restore
    from restorer.images import pil_to_tensor, tensor_to_pil

    lq = pil_to_tensor(Image.open(io.BytesIO(lq_png)).convert("RGB"))[None]
    return [(level, _png(tensor_to_pil(classical_restore(lq, sharpen=level)[0]))) for level in sharpen_levels]


def synthetic_face_images(seeds: list[int], resolution: int = 64) -> list[Image.Image]:
    """Synthetic faces from the DCGAN of `gan-face-generate` (trained on DigiFace1M, research use)."""
    from restorer.data import synthetic_faces
    from restorer.images import tensor_to_pil

    return [tensor_to_pil(face) for face in synthetic_faces(seeds, resolution)]
