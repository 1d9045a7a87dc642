"""Images and judgments as tensors for training: an image bank keyed by storage key, and the split by input."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.nn import functional as F

from reward_model.export import JudgmentRow
from reward_model.losses import OUTCOME_CODES


class ImageLookupError(ValueError):
    """An image named by a judgment is missing or unreadable."""


def pil_to_tensor(image: Image.Image) -> Tensor:
    """PIL image -> float32 ``[3, H, W]`` in [-1, 1] (the project's convention)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def as_image_tensor(image: Any) -> Tensor:
    """Accept a PIL image or a tensor ``[3,H,W]`` / ``[1,3,H,W]`` in [-1, 1]; return ``[3, H, W]`` float32."""
    if isinstance(image, Image.Image):
        return pil_to_tensor(image)
    if isinstance(image, Tensor):
        if image.ndim == 4 and image.shape[0] == 1:
            image = image[0]
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected an image tensor shaped [3, H, W], got {tuple(image.shape)}")
        return image.float()
    raise TypeError(f"expected a PIL image or a tensor, got {type(image).__name__}")


def resize_square(image: Tensor, resolution: int) -> Tensor:
    if image.shape[-2:] == (resolution, resolution):
        return image
    return F.interpolate(image.unsqueeze(0), size=(resolution, resolution), mode="bilinear", antialias=True)[
        0
    ]


class ImageBank:
    """All images a training run needs, resized once and stacked: ``bank.images[bank.index[key]]``."""

    def __init__(self, images: Mapping[str, Tensor], resolution: int) -> None:
        self.resolution = resolution
        self.index = {key: i for i, key in enumerate(images)}
        stacked = [resize_square(as_image_tensor(image), resolution) for image in images.values()]
        self.images = torch.stack(stacked) if stacked else torch.empty(0, 3, resolution, resolution)

    @classmethod
    def from_directory(cls, root: str | Path, keys: Iterable[str], resolution: int) -> ImageBank:
        """Load each key as a relative path under ``root`` (the web's local storage layout)."""
        root = Path(root)
        images: dict[str, Tensor] = {}
        for key in dict.fromkeys(keys):
            path = (root / key).resolve()
            if not path.is_relative_to(root.resolve()):
                raise ImageLookupError(f"image key {key!r} points outside the image root {root}")
            try:
                with Image.open(path) as image:
                    images[key] = pil_to_tensor(image)
            except FileNotFoundError as error:
                raise ImageLookupError(f"image {key!r} not found under {root}") from error
            except OSError as error:
                raise ImageLookupError(
                    f"image {key!r} under {root} is not a readable image ({error})"
                ) from error
        return cls(images, resolution)

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def lookup(self, keys: Sequence[str]) -> Tensor:
        missing = [key for key in keys if key not in self.index]
        if missing:
            raise ImageLookupError(f"{len(missing)} image(s) not in the bank, e.g. {missing[0]!r}")
        return torch.tensor([self.index[key] for key in keys], dtype=torch.long)


def keys_of(rows: Iterable[JudgmentRow]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in (row.lq_key, row.a_key, row.b_key)))


@dataclass
class JudgmentTensors:
    """Judgments as index tensors into an :class:`ImageBank`."""

    lq: Tensor
    a: Tensor
    b: Tensor
    outcome: Tensor
    a_shown_left: Tensor
    annotator_ids: list[str]

    def __len__(self) -> int:
        return int(self.outcome.shape[0])

    @classmethod
    def from_rows(cls, rows: Sequence[JudgmentRow], bank: ImageBank) -> JudgmentTensors:
        return cls(
            lq=bank.lookup([row.lq_key for row in rows]),
            a=bank.lookup([row.a_key for row in rows]),
            b=bank.lookup([row.b_key for row in rows]),
            outcome=torch.tensor([OUTCOME_CODES[row.outcome] for row in rows], dtype=torch.long),
            a_shown_left=torch.tensor([row.shown_left == "a" for row in rows], dtype=torch.bool),
            annotator_ids=[row.annotator_id for row in rows],
        )


SPLIT_METHODS = ("stable", "permutation")


def held_out_share(input_id: str, seed: int) -> float:
    """Where an input falls in [0, 1) for the stable split: a hash of the seed and its id alone."""
    digest = hashlib.blake2b(f"{seed}:{input_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_by_input(
    rows: Sequence[JudgmentRow], *, val_fraction: float, seed: int, method: str = "stable"
) -> tuple[list[JudgmentRow], list[JudgmentRow]]:
    """Split judgments so that no input appears in both parts (else validation would reward memorising faces).

    "stable": an input is held out when its `held_out_share` is below `val_fraction`, whatever else was
    judged, so a face held out once stays held out as judgments and faces accumulate, and two reward models
    trained rounds apart hold out the same faces: the loop compares them on judgments neither trained on.
    "permutation": a seeded permutation of the sorted inputs, which reshuffles whenever an input is added;
    models trained before the stable split used it, and recomputing their validation inputs needs it.
    Either way, of two or more inputs at least one is held out and at least one is trained on."""
    if method not in SPLIT_METHODS:
        raise ValueError(f"unknown split method {method!r}; expected one of {SPLIT_METHODS}")
    inputs = sorted({row.input_id for row in rows})
    if method == "stable":
        shares = {input_id: held_out_share(input_id, seed) for input_id in inputs}
        ranked = sorted(inputs, key=shares.__getitem__)
        n_val = sum(share < val_fraction for share in shares.values())
    else:
        rng = np.random.default_rng(seed)
        ranked = [inputs[i] for i in rng.permutation(len(inputs))]
        n_val = int(round(len(inputs) * val_fraction))
    if val_fraction > 0 and len(inputs) >= 2:
        n_val = min(max(n_val, 1), len(inputs) - 1)
    val_inputs = set(ranked[:n_val])
    train = [row for row in rows if row.input_id not in val_inputs]
    val = [row for row in rows if row.input_id in val_inputs]
    return train, val
