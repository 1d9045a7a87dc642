"""The project's jobs as a manager reads them: those running now and the most recent others, with state and
duration (the jobs app's own rule for who may read which job, and its duration: finished or now, less started)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, AnonymousUser
from django.db.models import Count

from annotation_web.dashboards.selectors.filters import DashboardFilters, within_dates
from annotation_web.jobs.models import JobState
from annotation_web.jobs.selectors import job_list_filtered
from annotation_web.labeling.models import Project

RECENT_JOBS = 30


def jobs_running_and_recent(
    *,
    user: AbstractUser | AnonymousUser,
    project: Project,
    filters: DashboardFilters,
    limit: int = RECENT_JOBS,
) -> list[dict]:
    """Every running job of the project, then the most recent others (created in the date range), newest
    first; duration in minutes (None for a job that has not started)."""
    visible = within_dates(job_list_filtered(user=user, project=project.slug), filters, field="created_at")
    running = list(visible.filter(state=JobState.RUNNING).order_by("-created_at"))
    others = list(visible.exclude(state=JobState.RUNNING).order_by("-created_at")[:limit])
    return [
        {
            "job": job.pk,
            "label": f"#{job.pk} {job.kind}",
            "kind": job.kind,
            "state": job.state,
            "created": job.created_at.isoformat(timespec="seconds"),
            "minutes": round(job.duration.total_seconds() / 60, 2) if job.duration is not None else None,
            "progress": f"{job.progress_done}/{job.progress_total}" if job.progress_total else "",
        }
        for job in running + others
    ]


def jobs_by_state(
    *, user: AbstractUser | AnonymousUser, project: Project, filters: DashboardFilters
) -> list[dict]:
    """How many of the project's jobs (created in the date range) are in each state, every state listed."""
    counts = dict(
        within_dates(job_list_filtered(user=user, project=project.slug), filters, field="created_at")
        .order_by()
        .values("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
    )
    return [{"state": state.value, "jobs": counts.get(state.value, 0)} for state in JobState]
