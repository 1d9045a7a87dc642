"""Creating model versions. Every version is made by `_model_version_create`, through one of two doors:

- `model_version_get_or_create`: a version that needs no artifact (classical restorations, reference images);
  the same (kind, name, version) always answers the same row.
- `model_version_register`: an artifact folder copied into the storage as the next version of (kind, name).

Numbers count per (kind, name) from 1, whichever door made the earlier versions. They are allocated
race-free by the unique constraint on (kind, name, version): the next number is tried in a savepoint and,
when a concurrent registration took it first, the next one after (`select_for_update` cannot do this: it
locks no row that does not exist yet, and none at all for the first version).
"""

from __future__ import annotations

from pathlib import Path

from django.db import IntegrityError, transaction
from django.db.models import Max

from annotation_web import ml_bridge
from annotation_web.errors import ServiceError
from annotation_web.registry import selectors
from annotation_web.registry.artifacts import artifact_prefix, artifact_upload
from annotation_web.registry.models import ARTIFACT_KINDS, ModelKind, ModelVersion

# Attempts at the next number before giving up (each lost race means another registration succeeded).
VERSION_ATTEMPTS = 20


def _next_version_number(*, kind: str, name: str) -> int:
    """One more than the highest committed (or own) version of (kind, name); a guess the insert confirms."""
    highest = ModelVersion.objects.filter(kind=kind, name=name).aggregate(Max("version"))["version__max"]
    return (highest or 0) + 1


def _model_version_create(
    *,
    kind: str,
    name: str,
    version: int | None = None,
    description: str = "",
    config: dict | None = None,
    metrics: dict | None = None,
    parent: ModelVersion | None = None,
    artifact_key: str = "",
    job_id: int | None = None,
) -> ModelVersion:
    """The one place a `ModelVersion` row is made. `version=None` takes the next free number of (kind, name),
    retrying past numbers a concurrent transaction took; `artifact_key` is the prefix of an upload that is
    already complete."""
    if kind not in ModelKind.values:
        raise ServiceError(f"unknown model kind {kind!r} (one of {', '.join(ModelKind.values)})")
    if not name:
        raise ServiceError("a model version needs a name")
    if version is not None and version < 1:
        raise ServiceError("model versions are numbered from 1")
    fields = {
        "kind": kind,
        "name": name,
        "description": description,
        "artifact_key": artifact_key,
        "parent": parent,
        "config": config or {},
        "metrics": metrics or {},
        "made_by_job_id": job_id,
    }
    if version is not None:
        return ModelVersion.objects.create(version=version, **fields)
    for _ in range(VERSION_ATTEMPTS):
        number = _next_version_number(kind=kind, name=name)
        try:
            # A savepoint: the unique constraint refuses a number another transaction holds (waiting for it
            # to commit or roll back), and only this attempt is rolled back.
            with transaction.atomic():
                return ModelVersion.objects.create(version=number, **fields)
        except IntegrityError:
            if job_id is not None and ModelVersion.objects.filter(made_by_job_id=job_id).exists():
                return ModelVersion.objects.get(made_by_job_id=job_id)  # a concurrent run of the job won
            continue
    raise ServiceError(f"could not allocate a version number for {kind}:{name}; try again")


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
    job_id: int | None = None,
) -> ModelVersion:
    """Copy an artifact folder into the storage as the next version of `kind/name`.

    The files go first, under a prefix of their own; the version row, pointing at them, only after. A failed
    upload leaves no version (and files under a prefix nothing points at). With `job_id`, the version is that
    job's one version: registering again for the job (a redelivered or resumed run) returns it unchanged."""
    if job_id is not None:
        existing = ModelVersion.objects.filter(made_by_job_id=job_id).first()
        if existing is not None:
            return existing
    if kind not in ARTIFACT_KINDS:
        raise ServiceError(f"only restorer and reward artifacts are registered, not {kind!r}")
    if not (folder / "config.json").exists():
        raise ServiceError(f"{folder} is not an artifact folder (no config.json)")
    config = {**ml_bridge.artifact_config(str(folder)), "lineage": lineage or {}}
    metrics = ml_bridge.artifact_metrics(str(folder))
    prefix = artifact_prefix(kind=kind, name=name)
    artifact_upload(folder=folder, prefix=prefix)
    return _model_version_create(
        kind=kind,
        name=name,
        description=description,
        parent=parent,
        config=config,
        metrics=metrics,
        artifact_key=prefix,
        job_id=job_id,
    )
