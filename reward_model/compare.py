"""Two reward models scored on the same held-out judgments, so that "the new model beats the one in use" is a
paired comparison and not two accuracies on two different validation sets.

The judgments: those on the inputs the new model held out for validation (recomputed from its saved
training config: the split `train` made) that the model in use never trained on either: every judgment of an
input both models held out (with the stable split, successive models hold out the same faces, so this is
most of the new model's validation set), and those judged after the model in use was trained (`unseen`).
Neither model trained on one of them. For the second kind the model in use may have trained on *older*
judgments of the same faces; that can only flatter it, so the comparison leans towards keeping what is in use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from restorer.artifacts import read_metrics
from reward_model.data import ImageBank, JudgmentTensors, keys_of
from reward_model.export import JudgmentRow
from reward_model.model import RewardModel
from reward_model.train import TrainConfig, strict_choices_right

# Fewer strict (a / b) judgments than this say nothing either way: the caller falls back and says so.
MIN_SHARED_JUDGMENTS = 10


@dataclass(frozen=True)
class SharedComparison:
    """`new` / `in_use`: pairwise accuracy on the `judgments` shared a / b judgments (None when too few);
    `only_new` / `only_in_use`: how many of them only that model ranks right (the discordant judgments, which
    alone tell the two apart: the paired difference's standard error, `accuracy_difference_se`)."""

    judgments: int
    new: float | None
    in_use: float | None
    only_new: int | None = None
    only_in_use: int | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "judgments": self.judgments,
            "new": self.new,
            "in_use": self.in_use,
            "only_new": self.only_new,
            "only_in_use": self.only_in_use,
        }


def accuracy_difference_se(*, judgments: int, only_new: int, only_in_use: int) -> float:
    """The standard error of the difference of two accuracies measured on the same `judgments` (McNemar's
    paired estimate): the judgments both models rank alike carry no evidence either way."""
    if judgments <= 0:
        return 0.0
    discordant, net = only_new + only_in_use, only_new - only_in_use
    return math.sqrt(max(discordant - net * net / judgments, 0.0)) / judgments


def validation_inputs(model_dir: str | Path, judgments: Sequence[JudgmentRow]) -> set[str]:
    """The inputs a reward model trained on `judgments` held out for validation, from its saved training
    config."""
    config = TrainConfig.from_dict(read_metrics(model_dir)["train_config"])
    _, val_rows = config.held_out_split(judgments)
    return {row.input_id for row in val_rows}


def shared_rows(
    *,
    new_dir: str | Path,
    trained_on: Sequence[JudgmentRow],
    unseen: Sequence[JudgmentRow],
    in_use_dir: str | Path | None = None,
) -> list[JudgmentRow]:
    """Of `trained_on` (non-gold), those on the inputs the new model held out that the model in use did not
    train on: on inputs it held out too (when `in_use_dir` is given; it trained on `trained_on` less
    `unseen`), or judged after it was trained (`unseen`)."""
    held_out = validation_inputs(new_dir, trained_on)
    unseen_rows = set(unseen)
    held_out_by_both: set[str] = set()
    if in_use_dir is not None:
        seen_by_in_use = [row for row in trained_on if row not in unseen_rows]
        held_out_by_both = held_out & validation_inputs(in_use_dir, seen_by_in_use)
    return [
        row
        for row in trained_on
        if not row.is_gold
        and row.input_id in held_out
        and (row in unseen_rows or row.input_id in held_out_by_both)
    ]


def compare_on_shared_judgments(
    *,
    new_dir: str | Path,
    in_use_dir: str | Path,
    trained_on: Sequence[JudgmentRow],
    unseen: Sequence[JudgmentRow],
    images_root: str | Path,
    device: str | torch.device = "cpu",
) -> SharedComparison:
    rows = shared_rows(new_dir=new_dir, trained_on=trained_on, unseen=unseen, in_use_dir=in_use_dir)
    strict = sum(row.outcome in ("a", "b") for row in rows)
    if strict < MIN_SHARED_JUDGMENTS:
        return SharedComparison(judgments=strict, new=None, in_use=None)
    right = []
    for model_dir in (new_dir, in_use_dir):
        model = RewardModel.from_pretrained(model_dir, device=device)
        # Each model reads the images at its own resolution.
        bank = ImageBank.from_directory(images_root, keys_of(rows), model.config.resolution)
        right.append(strict_choices_right(model, JudgmentTensors.from_rows(rows, bank), bank))
    new_right, in_use_right = right
    return SharedComparison(
        judgments=strict,
        new=float(new_right.float().mean()),
        in_use=float(in_use_right.float().mean()),
        only_new=int((new_right & ~in_use_right).sum()),
        only_in_use=int((in_use_right & ~new_right).sum()),
    )
