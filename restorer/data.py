"""Face sources: a user's image files (the real path) and a built-in synthetic source.

The synthetic faces come from the DCGAN shipped by the ``gan-face-generate`` package (64×64, trained on
DigiFace1M, whose licence allows **research use only**): face ``s`` is the generator applied to the latent
drawn from seed ``s``, so any list of seeds gives the same faces on every machine, offline. Train,
validation and test use seed ranges that never overlap (``SYNTHETIC_SPLITS``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import torch
from PIL import Image, UnidentifiedImageError

from restorer.images import face_crop_resize, pil_to_tensor, resize_batch

SYNTHETIC_NATIVE_RESOLUTION = 64
LATENT_DIM = 100
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

SYNTHETIC_SPLITS: dict[str, range] = {
    "train": range(0, 1_000_000),
    "val": range(1_000_000, 1_010_000),
    "test": range(2_000_000, 2_010_000),
}


@functools.cache
def _generator() -> torch.nn.Module:
    import gan_face_generate
    from gan_face_generate.models import Generator  # imported lazily: the web app rarely needs it

    weights_path = Path(gan_face_generate.__file__).parent / "weights.tar"
    # The package's weights.tar is a plain dict of tensors, so the safe loader reads it.
    checkpoint = torch.load(weights_path, map_location="cpu", weights_only=True)
    generator = Generator(0, 3, LATENT_DIM, 64)
    generator.load_state_dict(checkpoint["netG_state_dict"])
    # eval(): BatchNorm uses its running statistics, so a face does not depend on its batch-mates.
    return generator.eval().requires_grad_(False)


def synthetic_latents(seeds: Sequence[int]) -> torch.Tensor:
    return torch.stack(
        [torch.randn(LATENT_DIM, 1, 1, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    )


def synthetic_faces(seeds: Sequence[int], resolution: int = 64, *, batch_size: int = 256) -> torch.Tensor:
    """Faces ``[N, 3, R, R]`` in [-1, 1], one per seed, deterministic by seed (research use only)."""
    if len(seeds) == 0:
        return torch.empty(0, 3, resolution, resolution)
    generator = _generator()
    latents = synthetic_latents(seeds)
    chunks = []
    with torch.no_grad():
        for start in range(0, len(seeds), batch_size):
            faces = generator(latents[start : start + batch_size]).float()
            chunks.append(resize_batch(faces, resolution).clamp(-1.0, 1.0))
    return torch.cat(chunks)


def split_seeds(split: str, count: int, *, offset: int = 0) -> list[int]:
    """The first ``count`` seeds of a split (after ``offset``), with a clear error past its end."""
    try:
        seeds = SYNTHETIC_SPLITS[split]
    except KeyError:
        raise ValueError(f"unknown split {split!r}; choose one of {sorted(SYNTHETIC_SPLITS)}") from None
    if offset < 0 or offset + count > len(seeds):
        raise ValueError(f"split {split!r} holds {len(seeds)} seeds; asked for {count} from {offset}")
    return list(seeds[offset : offset + count])


def load_face_image(path_or_file: str | os.PathLike[str] | IO[bytes], resolution: int) -> torch.Tensor:
    """Read one image file, face-centred crop + resize: ``[3, R, R]`` in [-1, 1]."""
    try:
        with Image.open(path_or_file) as img:
            img.load()
            return pil_to_tensor(face_crop_resize(img, resolution))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read an image from {path_or_file!r}: {error}") from error


def list_face_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted so that an index names the same file every time."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_face_folder(
    folder: str | os.PathLike[str], resolution: int, *, limit: int | None = None
) -> torch.Tensor:
    paths = list_face_images(folder)[:limit]
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return torch.stack([load_face_image(p, resolution) for p in paths])
