"""Creating model versions. Every version is made by `_model_version_create`, through one of two doors:

- `model_version_get_or_create`: a version that needs no artifact (classical restorations, reference images);
  the same (kind, name, version) always answers the same row.
- `model_version_register`: an artifact folder copied into the storage as the next version of (kind, name).

Numbers count per (kind, name) from 1, whichever door made the earlier versions.
"""

from __future__ import annotations

from pathlib import Path

from django.db import IntegrityError, transaction

from annotation_web import ml_bridge
from annotation_web.errors import ServiceError
from annotation_web.registry import selectors
from annotation_web.registry.artifacts import artifact_prefix, artifact_upload
from annotation_web.registry.models import ARTIFACT_KINDS, ModelKind, ModelVersion


def _next_version_number(*, kind: str, name: str) -> int:
    """One more than the highest version of (kind, name), with those rows locked until the transaction ends."""
    numbers = (
        ModelVersion.objects.select_for_update()
        .filter(kind=kind, name=name)
        .values_list("version", flat=True)
    )
    return max(numbers, default=0) + 1


def _model_version_create(
    *,
    kind: str,
    name: str,
    version: int | None = None,
    description: str = "",
    config: dict | None = None,
    metrics: dict | None = None,
    parent: ModelVersion | None = None,
    with_artifact: bool = False,
) -> ModelVersion:
    """The one place a `ModelVersion` row is made. `version=None` takes the next number of (kind, name);
    `with_artifact` gives the version its storage prefix (`models/<kind>/<name>/v<version>/`)."""
    if kind not in ModelKind.values:
        raise ServiceError(f"unknown model kind {kind!r} (one of {', '.join(ModelKind.values)})")
    if not name:
        raise ServiceError("a model version needs a name")
    number = _next_version_number(kind=kind, name=name) if version is None else version
    if number < 1:
        raise ServiceError("model versions are numbered from 1")
    return ModelVersion.objects.create(
        kind=kind,
        name=name,
        version=number,
        description=description,
        artifact_key=artifact_prefix(kind=kind, name=name, version=number) if with_artifact else "",
        parent=parent,
        config=config or {},
        metrics=metrics or {},
    )


@transaction.atomic
def model_version_get_or_create(
    *, kind: str, name: str, version: int = 1, description: str = "", config: dict | None = None
) -> ModelVersion:
    """Version `version` of (kind, name), made on first use (a version without an artifact)."""
    existing = selectors.model_version_find(kind=kind, name=name, version=version)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return _model_version_create(
                kind=kind, name=name, version=version, description=description, config=config
            )
    except IntegrityError:  # another worker made it between the look-up and the insert
        found = selectors.model_version_find(kind=kind, name=name, version=version)
        if found is None:
            raise
        return found


@transaction.atomic
def model_version_register(
    *,
    kind: str,
    name: str,
    folder: Path,
    parent: ModelVersion | None = None,
    lineage: dict | None = None,
    description: str = "",
) -> ModelVersion:
    """Copy an artifact folder into the storage as the next version of `kind/name`."""
    if kind not in ARTIFACT_KINDS:
        raise ServiceError(f"only restorer and reward artifacts are registered, not {kind!r}")
    if not (folder / "config.json").exists():
        raise ServiceError(f"{folder} is not an artifact folder (no config.json)")
    version = _model_version_create(
        kind=kind,
        name=name,
        description=description,
        parent=parent,
        config={**ml_bridge.artifact_config(str(folder)), "lineage": lineage or {}},
        metrics=ml_bridge.artifact_metrics(str(folder)),
        with_artifact=True,
    )
    # Inside the transaction: a failed upload leaves no version behind.
    artifact_upload(folder=folder, prefix=version.artifact_key)
    return version
