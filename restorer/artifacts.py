"""The one artifact mechanism of the platform's models (restorer, reward model): a directory of three files.

- ``config.json``: the model's frozen dataclass config (``ArtifactConfig``: it carries the artifact's ``kind``,
  its config ``version`` and the ``seed`` the model was built from);
- ``model.safetensors``: the weights;
- ``metrics.json``: what training measured.

Never pickle: weights go through safetensors, configs through JSON. Anything that is not a complete, matching
artifact raises ``ArtifactError`` (a ``ValueError``) that says which file is wrong and why. ``reward_model``
builds on this module; this package never imports ``reward_model``.

Configs are read strictly (``reject_unknown_fields``): a key that is not a field is a typo or a config of
another kind, and dropping it silently would build or train something other than what was asked for.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"

ConfigT = TypeVar("ConfigT")


class ArtifactError(ValueError):
    """A model directory that is missing, corrupt, or holds another kind of model."""


class ArtifactConfig(Protocol):
    """What every model config saved in an artifact has (read-only: the configs are frozen dataclasses)."""

    @property
    def kind(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def seed(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...


def reject_unknown_fields(
    config_class: type,
    values: Mapping[str, Any],
    *,
    message: str,
    error: type[ValueError] = ValueError,
) -> None:
    """Raise ``error(f"{message}: [names]")`` when ``values`` holds keys that are not fields of the dataclass
    ``config_class``."""
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise error(f"{message}: {unknown}")


def write_artifact(
    directory: str | os.PathLike[str],
    *,
    config: ArtifactConfig,
    state_dict: Mapping[str, torch.Tensor],
    metrics: dict[str, Any] | None = None,
) -> Path:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in state_dict.items()}
    # Write to temporary names first so a crash never leaves a half-written artifact behind.
    save_file(tensors, str(out / (WEIGHTS_FILE + ".tmp")), metadata={"kind": config.kind})
    (out / (CONFIG_FILE + ".tmp")).write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True))
    (out / (METRICS_FILE + ".tmp")).write_text(json.dumps(metrics or {}, indent=2, sort_keys=True))
    for name in (WEIGHTS_FILE, CONFIG_FILE, METRICS_FILE):
        os.replace(out / (name + ".tmp"), out / name)
    return out


def read_config(
    directory: str | os.PathLike[str],
    parse: Callable[[dict[str, Any]], ConfigT],
    *,
    kind: str,
    version: int,
) -> ConfigT:
    """The config of the ``kind`` artifact in ``directory``, built by ``parse`` (the config's ``from_dict``),
    whose ``TypeError`` / ``ValueError`` become an ``ArtifactError`` naming the file."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ArtifactError(
            f"{Path(directory)} is not a {kind} artifact: {CONFIG_FILE} is missing"
            f" (there is no {CONFIG_FILE} to say what model it holds)"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path} is corrupt: not valid JSON ({error})") from error
    if not isinstance(data, dict) or data.get("kind") != kind:
        found = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise ArtifactError(
            f"{path} describes a {found!r} model, not a {kind!r} artifact (its kind is {found!r})"
        )
    if data.get("version") != version:
        raise ArtifactError(
            f"{path} has {kind} config version {data.get('version')!r}; this code reads version {version}"
        )
    try:
        return parse(data)
    except (TypeError, ValueError) as error:
        raise ArtifactError(f"{path} is not a valid {kind} config: {error}") from error


def load_weights(model: nn.Module, directory: str | os.PathLike[str]) -> None:
    """Load ``model.safetensors`` into ``model`` (built from the artifact's config), after checking that every
    weight is there with the shape the config gives it."""
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise ArtifactError(f"{Path(directory)} has no {WEIGHTS_FILE}")
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ArtifactError(f"{path} is corrupt: not a readable safetensors file ({error})") from error
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape)
    if missing or unexpected or wrong_shape:
        raise ArtifactError(
            f"{path} does not match its config: {len(missing)} weights missing (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}), "
            f"{len(wrong_shape)} whose shapes do not match (e.g. {wrong_shape[:2]})"
        )
    model.load_state_dict(weights)


def read_metrics(directory: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(directory) / METRICS_FILE
    if not path.is_file():
        return {}
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path} is corrupt: not valid JSON ({error})") from error
    return metrics if isinstance(metrics, dict) else {}
