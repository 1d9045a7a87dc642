"""Reading and writing artifact directories: ``config.json`` + ``model.safetensors`` + ``metrics.json``.

Never pickle: weights go through safetensors, configs through JSON. Anything that is not a complete,
matching artifact raises ``ArtifactError`` (a ``ValueError``) that says which file is wrong and why.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"


class ArtifactError(ValueError):
    """A model directory that is missing, corrupt, or holds another kind of model."""


def write_artifact(
    directory: str | os.PathLike[str],
    *,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    metrics: dict[str, Any] | None = None,
) -> Path:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in state_dict.items()}
    # Write to temporary names first so a crash never leaves a half-written artifact behind.
    save_file(tensors, str(out / (WEIGHTS_FILE + ".tmp")), metadata={"kind": str(config.get("kind", ""))})
    (out / (CONFIG_FILE + ".tmp")).write_text(json.dumps(config, indent=2, sort_keys=True))
    (out / (METRICS_FILE + ".tmp")).write_text(json.dumps(metrics or {}, indent=2, sort_keys=True))
    for name in (WEIGHTS_FILE, CONFIG_FILE, METRICS_FILE):
        os.replace(out / (name + ".tmp"), out / name)
    return out


def read_config(directory: str | os.PathLike[str], *, kind: str, version: int) -> dict[str, Any]:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ArtifactError(f"{Path(directory)} is not a model artifact: {CONFIG_FILE} is missing")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path} is corrupt: not valid JSON ({error})") from error
    if not isinstance(config, dict) or config.get("kind") != kind:
        found = config.get("kind") if isinstance(config, dict) else type(config).__name__
        raise ArtifactError(f"{path} describes a {found!r} model, not a {kind!r} artifact")
    if config.get("version") != version:
        raise ArtifactError(
            f"{path} has {kind} config version {config.get('version')!r}; this code reads {version}"
        )
    return config


def read_weights(directory: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise ArtifactError(f"{Path(directory)} has no {WEIGHTS_FILE}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ArtifactError(f"{path} is corrupt: {error}") from error


def read_metrics(directory: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(directory) / METRICS_FILE
    if not path.is_file():
        return {}
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path} is corrupt: not valid JSON ({error})") from error
    return metrics if isinstance(metrics, dict) else {}
