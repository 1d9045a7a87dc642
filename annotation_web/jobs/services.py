"""Jobs: create (and enqueue once the transaction commits), run, report progress, transition, cancel.

`jobs` is the lowest layer of the web: it imports no other app. What a job does comes from the registry of
job kinds (`jobs.kinds`), filled by the apps that own the kinds.
"""

from __future__ import annotations

import traceback
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from annotation_web.errors import NotFound, ServiceError
from annotation_web.jobs import kinds
from annotation_web.jobs.models import ALLOWED_TRANSITIONS, TERMINAL_STATES, Job, JobState

LOG_TAIL_CHARS = 8000


class JobTransitionError(ValueError):
    pass


def _locked(job_id: int) -> Job:
    return Job.objects.select_for_update().get(pk=job_id)


@transaction.atomic
def job_create(
    *,
    kind: str,
    params: dict[str, Any],
    project: models.Model | None = None,
    user: AbstractBaseUser | None = None,
) -> Job:
    """A queued job of a registered kind; its task is sent when the surrounding transaction commits."""
    spec = kinds.get(kind)
    # The project model lives in an app above jobs: jobs takes any model instance for it.
    owners: dict[str, Any] = {"project": project, "created_by": user}
    job = Job.objects.create(kind=spec.kind, params=params, **owners)
    transaction.on_commit(lambda: job_enqueue(job_id=job.pk, queue=spec.queue))
    return job


def job_enqueue(*, job_id: int, queue: str = kinds.DEFAULT_QUEUE) -> None:
    from annotation_web.jobs.tasks import run_job

    if queue == kinds.DEFAULT_QUEUE:
        run_job.delay(job_id)
    else:
        run_job.apply_async((job_id,), queue=queue)


@transaction.atomic
def job_transition(*, job_id: int, to_state: str, error: str = "") -> Job:
    job = _locked(job_id)
    if to_state not in ALLOWED_TRANSITIONS[job.state]:
        raise JobTransitionError(f"job {job.pk} cannot go from {job.state} to {to_state}")
    job.state = to_state
    now = timezone.now()
    if to_state == JobState.RUNNING and job.started_at is None:
        job.started_at = now
    if to_state in TERMINAL_STATES:
        job.finished_at = now
    if error:
        job.error = error[-LOG_TAIL_CHARS:]
    job.save()
    return job


@transaction.atomic
def job_report_progress(*, job_id: int, done: int, total: int, log_line: str = "") -> None:
    job = _locked(job_id)
    job.progress_done, job.progress_total = done, total
    if log_line:
        job.log_tail = (job.log_tail + log_line.rstrip() + "\n")[-LOG_TAIL_CHARS:]
    job.save(update_fields=["progress_done", "progress_total", "log_tail"])


def job_progress_reporter(*, job_id: int) -> kinds.Progress:
    """The `progress(done, total, log_line)` a runner is given."""

    def report(done: int, total: int, line: str) -> None:
        job_report_progress(job_id=job_id, done=done, total=total, log_line=line)

    return report


@transaction.atomic
def job_finish(*, job_id: int, outputs: dict) -> Job:
    job = _locked(job_id)
    job.outputs = outputs
    job.save(update_fields=["outputs"])
    return job_transition(job_id=job_id, to_state=JobState.SUCCEEDED)


@transaction.atomic
def job_cancel(*, job_id: int) -> Job:
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.state in TERMINAL_STATES:
        raise ServiceError(f"job {job_id} already {job.state}")
    spec = kinds.find(job.kind)
    if spec is not None and not spec.cancellable:
        raise ServiceError(f"{job.kind} jobs cannot be cancelled")
    return job_transition(job_id=job_id, to_state=JobState.CANCELLED)


def job_run(*, job_id: int) -> None:
    """What the worker does with a job id: run the kind's runner and record the outcome on the row.

    A job already finished or cancelled is left alone (a redelivered task does nothing); a job cancelled while
    its runner worked keeps its outputs and stays cancelled.
    """
    with transaction.atomic():
        job = _locked(job_id)
        if job.state not in (JobState.QUEUED, JobState.RUNNING):
            return
    job = job_transition(job_id=job_id, to_state=JobState.RUNNING)
    try:
        runner = kinds.get(job.kind).runner
        outputs = runner(job=job, progress=job_progress_reporter(job_id=job_id))
    except Exception as exc:  # noqa: BLE001 - the job row records any failure for the engineer to read
        if Job.objects.filter(pk=job_id, state=JobState.RUNNING).exists():
            job_transition(job_id=job_id, to_state=JobState.FAILED, error=f"{exc}\n{traceback.format_exc()}")
        raise
    with transaction.atomic():
        cancelled = _locked(job_id).state == JobState.CANCELLED
        if cancelled:
            Job.objects.filter(pk=job_id).update(outputs=outputs)
    if not cancelled:
        job_finish(job_id=job_id, outputs=outputs)
