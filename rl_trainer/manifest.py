"""The inputs manifest of an RL run, and the tensors built from it.

A manifest is a JSONL file (one JSON object a line; blank lines and lines starting with ``#`` are skipped) or a
JSON file holding a list of such objects (or ``{"inputs": [...]}``). Each object describes one degraded input:

``lq`` (required)
    path of the degraded face image (PNG/JPEG), relative to the manifest's folder unless absolute.
``hq`` (optional)
    path of its clean original, when known. Used for the perceptual fidelity term and by the held-out evaluator.
``degradation`` (optional)
    the ``restorer.degradations.DegradationParams.to_dict()`` that produced ``lq`` from ``hq``. Lets the
    observation-consistency term re-apply exactly that degradation to a restoration; without it a fixed low-pass
    + downsample is compared instead.
``instruction`` (optional)
    the text instruction for the restorer; defaults to ``instruction_text(degradation)`` or a generic one.
``id`` (optional)
    a name for logs; defaults to the line number.
``split`` (optional)
    ``"train"`` or ``"eval"``. Inputs marked ``eval`` are never trained on; they feed the evaluations, the
    reward-hacking guard and the solution entropy. When no input is marked, the last ``eval_fraction`` of the
    inputs (at least one) is held out.

Example line::

    {"id": "face-17", "lq": "lq/17.png", "hq": "hq/17.png", "degradation": {"preset": "gfpgan", ...},
     "split": "train"}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

GENERIC_INSTRUCTION = "restore the face, keep the identity"
SPLITS = ("train", "eval")


class ManifestError(ValueError):
    """A manifest that cannot be read: bad JSON, missing fields, missing files."""


@dataclass(frozen=True)
class ManifestEntry:
    id: str
    lq: Path
    hq: Path | None
    degradation: dict[str, Any] | None
    instruction: str | None
    split: str | None


@dataclass
class RLInputs:
    """A set of inputs as tensors; ``hq`` rows of inputs without an original are zeros and ``has_hq`` is False."""

    ids: list[str]
    lq: Tensor  # [N, 3, H, W] in [-1, 1]
    hq: Tensor  # [N, 3, H, W]
    has_hq: Tensor  # [N] bool
    degradations: list[Any | None]  # restorer.degradations.DegradationParams or None
    instructions: list[str]

    def __post_init__(self) -> None:
        count = len(self.ids)
        sizes = {self.lq.shape[0], self.hq.shape[0], self.has_hq.shape[0], len(self.degradations)}
        if sizes != {count} or len(self.instructions) != count:
            raise ValueError("RLInputs fields have different lengths")
        if count == 0:
            raise ValueError("RLInputs is empty")

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, indices: Sequence[int]) -> RLInputs:
        index = torch.as_tensor(list(indices), dtype=torch.long, device=self.lq.device)
        return RLInputs(
            ids=[self.ids[i] for i in indices],
            lq=self.lq[index],
            hq=self.hq[index],
            has_hq=self.has_hq[index],
            degradations=[self.degradations[i] for i in indices],
            instructions=[self.instructions[i] for i in indices],
        )

    def to(self, device: torch.device | str) -> RLInputs:
        return RLInputs(
            ids=self.ids,
            lq=self.lq.to(device),
            hq=self.hq.to(device),
            has_hq=self.has_hq.to(device),
            degradations=self.degradations,
            instructions=self.instructions,
        )

    def repeat_each(self, times: int) -> RLInputs:
        """Each input ``times`` times in a row: the layout of a rollout batch of groups."""
        return self.select([i for i in range(len(self)) for _ in range(times)])


def read_manifest(path: Path | str) -> list[ManifestEntry]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ManifestError(f"cannot read manifest {path}: {error}") from error
    rows: list[tuple[int, Any]] = []
    stripped = text.lstrip()
    if stripped.startswith("[") or (stripped.startswith("{") and path.suffix == ".json"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ManifestError(f"{path}: not valid JSON: {error}") from error
        items = document.get("inputs") if isinstance(document, dict) else document
        if not isinstance(items, list):
            raise ManifestError(f"{path}: a JSON manifest must be a list of inputs or {{'inputs': [...]}}")
        rows = list(enumerate(items, start=1))
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as error:
                raise ManifestError(f"{path}:{number}: not valid JSON: {error}") from error
    if not rows:
        raise ManifestError(f"{path}: the manifest lists no inputs")
    return [_entry(path, number, row) for number, row in rows]


def _entry(manifest: Path, number: int, row: Any) -> ManifestEntry:
    where = f"{manifest}:{number}"
    if not isinstance(row, dict):
        raise ManifestError(f"{where}: each input must be a JSON object")
    unknown = set(row) - {"id", "lq", "hq", "degradation", "instruction", "split"}
    if unknown:
        raise ManifestError(f"{where}: unknown fields {sorted(unknown)}")
    if not isinstance(row.get("lq"), str):
        raise ManifestError(f"{where}: 'lq' (path of the degraded image) is required")

    def resolve(value: str) -> Path:
        candidate = Path(value)
        resolved = candidate if candidate.is_absolute() else manifest.parent / candidate
        if not resolved.is_file():
            raise ManifestError(f"{where}: file not found: {resolved}")
        return resolved

    hq = row.get("hq")
    if hq is not None and not isinstance(hq, str):
        raise ManifestError(f"{where}: 'hq' must be a path or null")
    degradation = row.get("degradation")
    if degradation is not None and not isinstance(degradation, dict):
        raise ManifestError(f"{where}: 'degradation' must be an object of DegradationParams fields or null")
    split = row.get("split")
    if split is not None and split not in SPLITS:
        raise ManifestError(f"{where}: 'split' must be one of {SPLITS}, got {split!r}")
    instruction = row.get("instruction")
    if instruction is not None and not isinstance(instruction, str):
        raise ManifestError(f"{where}: 'instruction' must be text")
    return ManifestEntry(
        id=str(row.get("id", number)),
        lq=resolve(row["lq"]),
        hq=resolve(hq) if hq else None,
        degradation=degradation,
        instruction=instruction,
        split=split,
    )


def load_image(path: Path, resolution: int) -> Tensor:
    """An image file as ``[3, R, R]`` in [-1, 1]; already-cropped inputs of another size are resized."""
    from restorer.images import pil_to_tensor

    with Image.open(path) as opened:
        image = opened.convert("RGB")
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.Resampling.BICUBIC)
    return pil_to_tensor(image)


def load_inputs(entries: Sequence[ManifestEntry], resolution: int) -> RLInputs:
    from restorer.degradations import DegradationParams, instruction_text

    lq, hq, has_hq, degradations, instructions = [], [], [], [], []
    for entry in entries:
        lq_image = load_image(entry.lq, resolution)
        lq.append(lq_image)
        hq.append(load_image(entry.hq, resolution) if entry.hq else torch.zeros_like(lq_image))
        has_hq.append(entry.hq is not None)
        params = None
        if entry.degradation is not None:
            try:
                params = DegradationParams.from_dict(entry.degradation)
            except (TypeError, ValueError, KeyError) as error:
                raise ManifestError(f"input {entry.id}: bad degradation params: {error}") from error
        degradations.append(params)
        if entry.instruction:
            instructions.append(entry.instruction)
        elif params is not None:
            instructions.append(instruction_text(params))
        else:
            instructions.append(GENERIC_INSTRUCTION)
    return RLInputs(
        ids=[entry.id for entry in entries],
        lq=torch.stack(lq),
        hq=torch.stack(hq),
        has_hq=torch.tensor(has_hq, dtype=torch.bool),
        degradations=degradations,
        instructions=instructions,
    )


def split_entries(
    entries: Sequence[ManifestEntry], eval_fraction: float
) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """(train, eval): the manifest's own ``split`` marks, else the last ``eval_fraction`` held out."""
    if any(entry.split for entry in entries):
        train = [entry for entry in entries if entry.split != "eval"]
        evaluation = [entry for entry in entries if entry.split == "eval"]
    else:
        held_out = max(1, round(len(entries) * eval_fraction)) if eval_fraction > 0 else 0
        held_out = min(held_out, len(entries) - 1)
        train, evaluation = list(entries[: len(entries) - held_out]), list(entries[len(entries) - held_out :])
    if not train:
        raise ManifestError("the manifest leaves no inputs to train on")
    return train, evaluation


def write_manifest(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write rows as JSONL (used by the benchmark and the tests to build a manifest)."""
    Path(path).write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
