"""Checkpoints of an RL run: ``<out>/checkpoints/step_000010/{policy.safetensors, training_state.pt, state.json}``.

``state.json`` is written last, so a folder without it is an interrupted save and is ignored. The optimizer
state and RNG states are plain tensors and numbers, saved with ``torch.save`` and loaded with
``weights_only=True`` (no pickled code is ever executed).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from rl_trainer.config import RLConfig

CHECKPOINTS_DIR = "checkpoints"


class CheckpointError(ValueError):
    """A checkpoint that is corrupt or belongs to a different run configuration."""


@dataclass
class Checkpoint:
    step: int
    policy_state: dict[str, Tensor]
    training_state: dict[str, Any]
    state: dict[str, Any]


def save_checkpoint(
    out_dir: Path,
    *,
    step: int,
    policy_state: dict[str, Tensor],
    training_state: dict[str, Any],
    state: dict[str, Any],
    keep: int,
) -> Path:
    root = Path(out_dir) / CHECKPOINTS_DIR
    folder = root / f"step_{step:06d}"
    partial = root / f".partial_step_{step:06d}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file(policy_state, str(partial / "policy.safetensors"))
    torch.save(training_state, partial / "training_state.pt")
    (partial / "state.json").write_text(json.dumps({**state, "step": step}, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    for old in complete_checkpoints(out_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def complete_checkpoints(out_dir: Path) -> list[Path]:
    root = Path(out_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    folders = [path for path in root.glob("step_*") if (path / "state.json").is_file()]
    return sorted(folders, key=lambda path: path.name)


def load_latest_checkpoint(out_dir: Path, config: RLConfig) -> Checkpoint | None:
    folders = complete_checkpoints(out_dir)
    if not folders:
        return None
    folder = folders[-1]
    try:
        state = json.loads((folder / "state.json").read_text())
        policy_state = load_file(str(folder / "policy.safetensors"))
        training_state = torch.load(folder / "training_state.pt", weights_only=True)
    except Exception as error:  # safetensors, json and torch raise many kinds for a damaged file
        raise CheckpointError(f"checkpoint {folder} is unreadable: {error}") from error
    if state.get("config") != config.to_dict():
        raise CheckpointError(
            f"checkpoint {folder} was written by a run with another RLConfig; "
            "use a fresh output folder or the same config to resume"
        )
    return Checkpoint(
        step=int(state["step"]), policy_state=policy_state, training_state=training_state, state=state
    )
