"""The read side of the model registry."""

from __future__ import annotations

from django.db.models import QuerySet

from annotation_web.errors import NotFound, ServiceError
from annotation_web.registry.models import ModelVersion


def model_version_list(*, kind: str | None = None) -> QuerySet[ModelVersion]:
    """Every version (of one kind when given), in registry order, with its parent at hand."""
    queryset = ModelVersion.objects.select_related("parent").order_by("kind", "name", "version")
    return queryset.filter(kind=kind) if kind else queryset


def model_version_get(*, pk: int, kind: str | None = None) -> ModelVersion:
    queryset = ModelVersion.objects.filter(pk=pk)
    version = (queryset.filter(kind=kind) if kind else queryset).first()
    if version is None:
        raise NotFound(f"no {kind} model version with id {pk}" if kind else f"no model version {pk}")
    return version


def model_version_loadable(*, pk: int, kind: str) -> ModelVersion:
    """A version of `kind` whose artifact a job can load; refuses unknown ids and versions without one."""
    version = model_version_get(pk=pk, kind=kind)
    if not version.artifact_key:
        raise ServiceError(f"{version} has no artifact to load")
    return version


def model_version_find(*, kind: str, name: str, version: int) -> ModelVersion | None:
    return ModelVersion.objects.filter(kind=kind, name=name, version=version).first()
