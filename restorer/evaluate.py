"""Evaluate restorers against baselines on held-out degraded faces: ``python -m restorer.evaluate``.

Columns: PSNR and SSIM (fidelity), the perceptual distance (``lpips_alex`` when the AlexNet trunk is in the
torch hub cache, else ``lpips_randtrunk`` — never called "LPIPS"), identity similarity (cosine of
``face_recognition`` embeddings, only when that package is installed; otherwise the column is left out and
the reason printed), and solution entropy: the mean per-pixel standard deviation across ``entropy_seeds``
samples of the same input (0 for deterministic baselines such as bicubic).

Rows: ``bicubic`` (the LQ as given: it is already the bicubic upsampling of the small image), optionally
``classical`` (bicubic + unsharp mask), and every restorer passed in (e.g. the no-integrator ablation and
the full model).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from restorer.classical import classical_restore
from restorer.data import load_face_folder, split_seeds, synthetic_faces
from restorer.degradations import degrade_batch, instruction_text
from restorer.images import to_uint8
from restorer.metrics import PerceptualDistance, psnr, solution_entropy, ssim
from restorer.model import Restorer
from restorer.sampling import restore


@dataclass
class EvaluationSet:
    hq: torch.Tensor
    lq: torch.Tensor
    instructions: list[str]
    description: str


@dataclass
class EvaluationRow:
    method: str
    metrics: dict[str, float]
    sampling_images_per_second: float | None = None


@dataclass
class EvaluationTable:
    rows: list[EvaluationRow]
    perceptual_name: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "perceptual_metric": self.perceptual_name,
            "notes": self.notes,
            "rows": [
                {"method": r.method, **r.metrics, "sampling_images_per_second": r.sampling_images_per_second}
                for r in self.rows
            ],
        }

    def format(self) -> str:
        columns = list(dict.fromkeys(k for row in self.rows for k in row.metrics))
        header = ["method", *columns, "sampling img/s"]
        lines = [" | ".join(f"{h:>16}" for h in header)]
        for row in self.rows:
            cells = [f"{row.method:>16}"]
            cells += [f"{row.metrics[c]:>16.4f}" if c in row.metrics else f"{'-':>16}" for c in columns]
            rate = row.sampling_images_per_second
            cells.append(f"{rate:>16.2f}" if rate is not None else f"{'-':>16}")
            lines.append(" | ".join(cells))
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def synthetic_evaluation_set(
    count: int, *, preset: str = "gfpgan", resolution: int = 64, split: str = "test"
) -> EvaluationSet:
    """Held-out synthetic faces (``split`` seeds) degraded with a draw seeded by the face's seed."""
    seeds = split_seeds(split, count)
    hq = synthetic_faces(seeds, resolution)
    lq, params = degrade_batch(hq, preset=preset, seeds=seeds)
    description = (
        f"{count} synthetic faces from the {split} split, {preset} preset, {resolution}x{resolution}"
    )
    return EvaluationSet(hq, lq, [instruction_text(p) for p in params], description)


def folder_evaluation_set(folder: str, count: int, *, preset: str, resolution: int) -> EvaluationSet:
    hq = load_face_folder(folder, resolution, limit=count)
    seeds = list(range(hq.shape[0]))
    lq, params = degrade_batch(hq, preset=preset, seeds=seeds)
    return EvaluationSet(
        hq, lq, [instruction_text(p) for p in params], f"{hq.shape[0]} faces from {folder}, {preset}"
    )


def _identity_similarity() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    try:
        import face_recognition  # type: ignore[import-not-found]
    except ImportError:
        return None

    def embed(batch: torch.Tensor) -> list[np.ndarray | None]:
        embeddings: list[np.ndarray | None] = []
        for image in to_uint8(batch).permute(0, 2, 3, 1).numpy():
            h, w = image.shape[:2]
            found = face_recognition.face_encodings(
                np.ascontiguousarray(image), known_face_locations=[(0, w, h, 0)]
            )
            embeddings.append(found[0] if found else None)
        return embeddings

    def similarity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        values = []
        for a, b in zip(embed(x), embed(y)):
            if a is None or b is None:
                values.append(float("nan"))
            else:
                values.append(float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
        return torch.tensor(values)

    return similarity


def evaluate(
    restorers: dict[str, Restorer],
    data: EvaluationSet,
    *,
    num_steps: int = 20,
    entropy_seeds: int = 8,
    entropy_inputs: int = 32,
    include_classical: bool = False,
    batch_size: int = 64,
) -> EvaluationTable:
    perceptual = PerceptualDistance()
    identity = _identity_similarity()
    notes = [data.description, f"restorers sampled with DDIM, {num_steps} steps, eta=0, seed = input index"]
    if identity is None:
        notes.append("identity similarity skipped: face_recognition is not installed")
    subset = min(entropy_inputs, data.hq.shape[0])
    notes.append(
        f"solution entropy: mean per-pixel std over {entropy_seeds} seeds on the first {subset} inputs"
    )

    def scores(method: str, output: torch.Tensor, entropy: float, rate: float | None) -> EvaluationRow:
        metrics = {
            "psnr": float(psnr(output, data.hq).mean()),
            "ssim": float(ssim(output, data.hq).mean()),
            perceptual.name: float(perceptual(output, data.hq).mean()),
        }
        if identity is not None:
            metrics["identity"] = float(identity(output, data.hq).nanmean())
        metrics["solution_entropy"] = entropy
        return EvaluationRow(method, metrics, rate)

    rows = [scores("bicubic", data.lq, 0.0, None)]
    if include_classical:
        rows.append(scores("classical", classical_restore(data.lq), 0.0, None))
    for name, model in restorers.items():
        model.eval()
        started = time.perf_counter()
        output = restore(model, data.lq, data.instructions, num_steps=num_steps, batch_size=batch_size)
        rate = data.lq.shape[0] / (time.perf_counter() - started)
        samples = [output[:subset]]
        for s in range(1, entropy_seeds):
            samples.append(
                restore(
                    model,
                    data.lq[:subset],
                    data.instructions[:subset],
                    num_steps=num_steps,
                    seed=s * 1_000_003,
                )
            )
        rows.append(scores(name, output, solution_entropy(torch.stack(samples)), rate))
    return EvaluationTable(rows, perceptual.name, notes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", action="append", default=[], metavar="NAME=DIR", help="a restorer artifact (repeatable)"
    )
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--preset", default="gfpgan")
    parser.add_argument("--resolution", type=int, help="default: the first model's resolution, else 64")
    parser.add_argument("--folder", help="evaluate on these face images instead of the synthetic test split")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--entropy-seeds", type=int, default=8)
    parser.add_argument("--entropy-inputs", type=int, default=32)
    parser.add_argument("--classical", action="store_true", help="add the classical (unsharp mask) baseline")
    parser.add_argument("--json", help="also write the table as JSON here")
    args = parser.parse_args(argv)
    restorers = {}
    for spec in args.model:
        name, _, directory = spec.rpartition("=")
        restorers[name or Path(directory).name] = Restorer.from_pretrained(directory)
    resolution = args.resolution or next((m.config.resolution for m in restorers.values()), 64)
    if args.folder:
        data = folder_evaluation_set(args.folder, args.count, preset=args.preset, resolution=resolution)
    else:
        data = synthetic_evaluation_set(args.count, preset=args.preset, resolution=resolution)
    table = evaluate(
        restorers,
        data,
        num_steps=args.steps,
        entropy_seeds=args.entropy_seeds,
        entropy_inputs=args.entropy_inputs,
        include_classical=args.classical,
    )
    print(table.format())
    if args.json:
        Path(args.json).write_text(json.dumps(table.to_dict(), indent=2))


if __name__ == "__main__":
    main()
