"""The loop's read side: policies, state, events and the history of what was in use."""

from __future__ import annotations

from django.db.models import QuerySet

from annotation_web.labeling.models import Judgment, Outcome, Project
from annotation_web.loop.models import LoopEvent, LoopPolicy, LoopState, VersionChange
from annotation_web.registry.models import ModelVersion


def loop_policy_get(*, project: Project) -> LoopPolicy:
    """The project's policy, or the defaults (unsaved, disabled) when none was stored yet."""
    return LoopPolicy.objects.filter(project=project).first() or LoopPolicy(project=project)


def loop_state_get(*, project: Project) -> LoopState:
    return LoopState.objects.filter(project=project).first() or LoopState(project=project)


def loop_enabled_project_ids() -> list[int]:
    return list(
        LoopPolicy.objects.filter(enabled=True).order_by("project_id").values_list("project_id", flat=True)
    )


def loop_events_list(*, project: Project) -> QuerySet[LoopEvent]:
    return LoopEvent.objects.filter(project=project).select_related("job").order_by("-pk")


def version_changes_list(*, project: Project) -> QuerySet[VersionChange]:
    return VersionChange.objects.filter(project=project).select_related("version", "previous", "by")


def judgments_since(*, project: Project, reward: ModelVersion | None) -> int:
    """Non-gold, non-skip judgments newer than those the reward model `reward` was trained on."""
    mark = int((reward.config.get("lineage") or {}).get("up_to_judgment_id", 0)) if reward else 0
    return (
        Judgment.objects.filter(pair__project=project, pair__is_gold=False, is_gold=False, pk__gt=mark)
        .exclude(outcome=Outcome.SKIP)
        .count()
    )
