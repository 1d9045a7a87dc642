"""The read side of jobs."""

from __future__ import annotations

from django.db.models import QuerySet

from annotation_web.jobs.models import Job, JobState


def job_list() -> QuerySet[Job]:
    """Every job, newest first, with its project at hand."""
    return Job.objects.select_related("project").order_by("-created_at")


def job_is_cancelled(*, job_id: int) -> bool:
    """Whether an engineer cancelled the job (a long runner asks this between steps)."""
    return Job.objects.filter(pk=job_id, state=JobState.CANCELLED).exists()
