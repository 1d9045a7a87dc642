"""Tiny synthetic data for reward model tests: smooth random "faces", candidates at known noise levels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from reward_model.export import JudgmentRow
from reward_model.oracle import OracleAnnotator

NOISE_LEVELS = (0.02, 0.12, 0.3, 0.6)  # candidate quality, best first


@dataclass
class ToyData:
    hq: dict[str, torch.Tensor]  # input id -> HQ image
    images: dict[str, torch.Tensor]  # storage key -> image (LQ and candidates)
    candidates: dict[str, list[str]]  # input id -> candidate keys, best first
    noise_level: dict[str, float]  # candidate key -> noise sigma


def smooth_image(generator: torch.Generator, resolution: int) -> torch.Tensor:
    coarse = torch.rand(1, 3, 4, 4, generator=generator) * 2 - 1
    return F.interpolate(coarse, size=(resolution, resolution), mode="bicubic", align_corners=False)[0].clamp(
        -1, 1
    )


def make_toy_data(n_inputs: int, *, resolution: int = 16, seed: int = 0) -> ToyData:
    generator = torch.Generator().manual_seed(seed)
    data = ToyData({}, {}, {}, {})
    for i in range(n_inputs):
        input_id = f"face{i:03d}"
        hq = smooth_image(generator, resolution)
        data.hq[input_id] = hq
        data.images[f"lq/{input_id}.png"] = (hq + 0.4 * torch.randn(hq.shape, generator=generator)).clamp(
            -1, 1
        )
        keys = []
        for level in NOISE_LEVELS:
            key = f"samples/{input_id}/noise{level}.png"
            data.images[key] = (hq + level * torch.randn(hq.shape, generator=generator)).clamp(-1, 1)
            data.noise_level[key] = level
            keys.append(key)
        data.candidates[input_id] = keys
    return data


def oracle_rows(
    data: ToyData,
    annotators: dict[str, OracleAnnotator],
    *,
    judgments_per_annotator: int,
    seed: int = 0,
    is_gold: bool = False,
) -> list[JudgmentRow]:
    """Judgments of random within-input pairs by each annotator, as export rows."""
    generator = torch.Generator().manual_seed(seed)
    inputs = sorted(data.candidates)
    rows = []
    for annotator_id, oracle in annotators.items():
        for n in range(judgments_per_annotator):
            input_id = inputs[int(torch.randint(len(inputs), (1,), generator=generator))]
            i, j = torch.randperm(len(NOISE_LEVELS), generator=generator)[:2].tolist()
            a_key, b_key = data.candidates[input_id][i], data.candidates[input_id][j]
            shown_left = "a" if torch.rand(1, generator=generator) < 0.5 else "b"
            outcome = oracle.judge(
                data.hq[input_id], data.images[a_key], data.images[b_key], shown_left=shown_left
            )
            rows.append(
                JudgmentRow(
                    pair_id=f"{input_id}:{i}:{j}",
                    input_id=input_id,
                    lq_key=f"lq/{input_id}.png",
                    a_key=a_key,
                    b_key=b_key,
                    outcome=outcome,
                    annotator_id=annotator_id,
                    is_gold=is_gold,
                    shown_left=shown_left,  # type: ignore[arg-type]
                    duration_ms=1000 + n,
                    created_at="2026-11-26T09:00:00Z",
                    a_model="toy",
                    b_model="toy",
                    a_seed=i,
                    b_seed=j,
                )
            )
    return rows
