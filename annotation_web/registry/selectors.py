"""The read side of the model registry."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, AnonymousUser
from django.db.models import Q, QuerySet

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


# --- what a user may read, and the registry pages ------------------------------------------------------------


def model_version_list_visible(
    *, user: AbstractUser | AnonymousUser, kind: str = ""
) -> QuerySet[ModelVersion]:
    """The versions `user` may read, in registry order, with parent and maker at hand: every version a job of
    one of their projects made, and every version no project's job made (registered by a command, made on
    first use: classical restorations, references; those are shared by all projects). A superuser reads all."""
    versions = ModelVersion.objects.select_related("parent", "made_by_job", "made_by_job__project").order_by(
        "kind", "name", "version"
    )
    if kind:
        versions = versions.filter(kind=kind)
    if user.is_superuser:
        return versions
    if not user.is_authenticated:
        return versions.none()
    return versions.filter(
        Q(made_by_job__isnull=True) | Q(made_by_job__project__memberships__user_id=user.pk)
    )


def model_version_get_visible(*, user: AbstractUser | AnonymousUser, pk: int) -> ModelVersion:
    version = model_version_list_visible(user=user).filter(pk=pk).first()
    if version is None:
        raise NotFound(f"no model version {pk}")
    return version


def model_version_lineage(*, user: AbstractUser | AnonymousUser, version: ModelVersion) -> dict:
    """Where `version` comes from and what came of it, among the versions `user` may read (four queries
    whatever the depth): `ancestors` (parent, grandparent, … up to the first version), `descendants` (children,
    their children, …, each with its `depth` below `version`), `made_from` (versions whose lineage names it:
    restorers tuned against this reward model), `tuned_against` (the reward model this restorer was tuned
    against), and `used_by_jobs` (the jobs, newest first, that took it as an input)."""
    from annotation_web.jobs.selectors import job_list_using_model

    # The whole tree's ids (a few hundred versions at most): one query, walked here at any depth.
    edges = dict(ModelVersion.objects.values_list("pk", "parent_id"))
    ancestor_ids: list[int] = []
    cursor = edges.get(version.pk)
    while cursor is not None and cursor not in ancestor_ids:
        ancestor_ids.append(cursor)
        cursor = edges.get(cursor)
    children: dict[int, list[int]] = {}
    for child, parent in edges.items():
        if parent is not None:
            children.setdefault(parent, []).append(child)
    descendant_depth: dict[int, int] = {}
    stack = [(child, 1) for child in sorted(children.get(version.pk, []), reverse=True)]
    order: list[int] = []
    while stack:
        node, depth = stack.pop()
        if node in descendant_depth or node == version.pk:
            continue
        descendant_depth[node] = depth
        order.append(node)
        stack.extend((child, depth + 1) for child in sorted(children.get(node, []), reverse=True))
    lineage = (version.config or {}).get("lineage") or {}
    reward_id = lineage.get("reward_id")
    wanted = set(ancestor_ids) | set(order) | ({reward_id} if isinstance(reward_id, int) else set())
    visible = model_version_list_visible(user=user)
    rows = {row.pk: row for row in visible.filter(pk__in=wanted)}
    made_from = (
        list(visible.filter(config__lineage__reward_id=version.pk)) if version.kind == "reward" else []
    )
    used_by = job_list_using_model(user=user, model_version_id=version.pk)[:20]
    return {
        "ancestors": [rows[pk] for pk in ancestor_ids if pk in rows],
        "descendants": [{"version": rows[pk], "depth": descendant_depth[pk]} for pk in order if pk in rows],
        "made_from": made_from,
        "tuned_against": rows.get(reward_id) if isinstance(reward_id, int) else None,
        "used_by_jobs": list(used_by),
    }
