"""The read side of jobs."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from annotation_web.jobs import kinds
from annotation_web.jobs.models import Job, JobState, WorkerPresence


def job_list() -> QuerySet[Job]:
    """Every job, newest first, with its project at hand."""
    return Job.objects.select_related("project").order_by("-created_at")


def job_is_cancelled(*, job_id: int) -> bool:
    """Whether an engineer cancelled the job (a long runner asks this between steps)."""
    return Job.objects.filter(pk=job_id, state=JobState.CANCELLED).exists()


def workers_alive() -> QuerySet[WorkerPresence]:
    """The workers that announced themselves within `WORKER_ALIVE_SECONDS`."""
    since = timezone.now() - timedelta(seconds=settings.WORKER_ALIVE_SECONDS)
    return WorkerPresence.objects.filter(last_seen_at__gte=since).order_by("name")


def queues_alive() -> dict[str, int]:
    """Live workers per queue, for every queue the job kinds use (0: nobody would run its jobs)."""
    counts = {queue: 0 for queue in kinds.QUEUES}
    for queues in workers_alive().values_list("queues", flat=True):
        for queue in queues:
            counts[queue] = counts.get(queue, 0) + 1
    return counts


def job_waiting_for(job: Job) -> int | None:
    """The running job of the same kind and project that a queued job waits for (one runs at a time)."""
    if job.state != JobState.QUEUED or job.project_id is None:
        return None
    return (
        Job.objects.filter(project_id=job.project_id, kind=job.kind, state=JobState.RUNNING)
        .values_list("pk", flat=True)
        .first()
    )
