"""Jobs: create (and enqueue once the transaction commits), transition, report progress, cancel, retry, and
commit a run's result. Running a job (its lease) is `jobs.runs`; recovering lost runs is `jobs.reaper`.

`jobs` is the lowest layer of the web: it imports no other app. What a job does comes from the registry of
job kinds (`jobs.kinds`), filled by the apps that own the kinds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from annotation_web.errors import NotFound, ServiceError
from annotation_web.jobs import kinds
from annotation_web.jobs.models import ALLOWED_TRANSITIONS, TERMINAL_STATES, Job, JobState

LOG_TAIL_CHARS = 8000
HISTORY_CHARS = 20000
logger = logging.getLogger(__name__)


class JobTransitionError(ValueError):
    pass


class JobStopped(Exception):
    """The run no longer holds its job (cancelled, or taken over after its lease expired): it writes nothing."""


def _locked(job_id: int) -> Job:
    return Job.objects.select_for_update().get(pk=job_id)


def _stamped(line: str) -> str:
    return f"[{timezone.now():%Y-%m-%d %H:%M:%S}] {line}"


def append_log(job: Job, line: str) -> None:
    """Add a line to the job's log tail (on the instance; the caller saves it)."""
    job.log_tail = (job.log_tail + line.rstrip() + "\n")[-LOG_TAIL_CHARS:]


def append_history(job: Job, line: str) -> None:
    """Record what happened to the run, timestamped, in its history and its log tail (the caller saves)."""
    stamped = _stamped(line).rstrip() + "\n"
    job.history = (job.history + stamped)[-HISTORY_CHARS:]
    append_log(job, stamped)


@transaction.atomic
def job_record_event(*, job_id: int, line: str) -> None:
    """A line for the job's history from its runner (a resume from a checkpoint, a guard's stop)."""
    job = _locked(job_id)
    append_history(job, line)
    job.save(update_fields=["history", "log_tail"])


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
    job = Job.objects.create(kind=spec.kind, params=params, queue=spec.queue, **owners)
    transaction.on_commit(lambda: job_enqueue(job_id=job.pk))
    return job


def job_enqueue(*, job_id: int) -> bool:
    """Send the job's task to its kind's queue; False (and a line in the log) when the broker refused it — the
    row stays QUEUED without `enqueued_at` and the reaper sends it again. Sending twice is harmless: a run
    starts only from QUEUED (or from an expired lease)."""
    from annotation_web.jobs.tasks import run_job

    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return False
    spec = kinds.find(job.kind)
    options: dict[str, Any] = {"queue": job.queue}
    if spec is not None and spec.time_limit is not None:
        options["time_limit"] = spec.time_limit
    if run_job.app.conf.task_always_eager:  # run here and now (tests, scripts): its errors are the caller's
        run_job.apply_async((job_id,), **options)
        return True
    try:
        run_job.apply_async((job_id,), **options)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the reaper retries, the log says why
        logger.warning("could not send job %s to queue %s: %s", job_id, job.queue, exc)
        with transaction.atomic():
            job = _locked(job_id)
            append_history(job, f"could not send the job to queue {job.queue!r} ({exc}); will retry")
            job.save(update_fields=["history", "log_tail"])
        return False
    Job.objects.filter(pk=job_id).update(enqueued_at=timezone.now())
    return True


def _enqueue_waiting_sibling(job: Job) -> None:
    """A job of the same kind and project that waited for this one to stop running may start now."""
    if job.project_id is None:
        return
    waiting = (
        Job.objects.filter(project_id=job.project_id, kind=job.kind, state=JobState.QUEUED)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)
        .first()
    )
    if waiting is not None:
        transaction.on_commit(lambda: job_enqueue(job_id=waiting))


@transaction.atomic
def job_transition(*, job_id: int, to_state: str, error: str = "", log_line: str = "") -> Job:
    job = _locked(job_id)
    if to_state not in ALLOWED_TRANSITIONS[job.state]:
        raise JobTransitionError(f"job {job.pk} cannot go from {job.state} to {to_state}")
    was_running = job.state == JobState.RUNNING
    job.state = to_state
    now = timezone.now()
    if to_state == JobState.RUNNING and job.started_at is None:
        job.started_at = now
    if to_state in TERMINAL_STATES:
        job.finished_at = now
        job.lease_expires_at = None
    if error:
        job.error = error[-LOG_TAIL_CHARS:]
    if log_line:
        append_history(job, log_line)
    job.save()
    if was_running and to_state != JobState.RUNNING:
        _enqueue_waiting_sibling(job)
    return job


@transaction.atomic
def job_report_progress(*, job_id: int, done: int, total: int, log_line: str = "") -> None:
    job = _locked(job_id)
    job.progress_done, job.progress_total = done, total
    if log_line:
        append_log(job, log_line)
    job.save(update_fields=["progress_done", "progress_total", "log_tail"])


def job_progress_reporter(*, job_id: int) -> kinds.Progress:
    """The `progress(done, total, log_line)` a runner is given."""

    def report(done: int, total: int, line: str) -> None:
        job_report_progress(job_id=job_id, done=done, total=total, log_line=line)

    return report


def job_holds_run(job: Job) -> bool:
    """Whether this run (its attempt) still holds the job: RUNNING, and no other attempt took it over."""
    return Job.objects.filter(pk=job.pk, state=JobState.RUNNING, attempt=job.attempt).exists()


def job_commit(job: Job, write: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Write a run's result and finish the job in one transaction, only while the run still holds the job.

    `write()` makes what the job makes (registers a model version, queues pairs) and returns the job's
    outputs. The job row is locked meanwhile, so a cancel either comes first (nothing is written: JobStopped)
    or finds the job succeeded; a worker that dies inside leaves nothing half-written; a run whose lease
    another worker took over writes nothing."""
    with transaction.atomic():
        row = _locked(job.pk)
        if row.state != JobState.RUNNING or row.attempt != job.attempt:
            raise JobStopped(
                f"job {job.pk} is {row.state} (attempt {row.attempt}): run {job.attempt} writes nothing"
            )
        outputs = write()
        row.outputs = outputs
        row.committed_at = timezone.now()
        row.save(update_fields=["outputs", "committed_at"])
        job_transition(job_id=job.pk, to_state=JobState.SUCCEEDED)
    return outputs


@transaction.atomic
def job_cancel(*, job_id: int) -> Job:
    """Stop a job: a queued one never runs; a running one stops at the next checkpoint of its work and writes
    no result (its partial outputs are kept on the row, marked partial)."""
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.state in TERMINAL_STATES:
        raise ServiceError(f"job {job_id} already {job.state}")
    spec = kinds.find(job.kind)
    if spec is not None and not spec.cancellable:
        raise ServiceError(f"{job.kind} jobs cannot be cancelled")
    return job_transition(job_id=job_id, to_state=JobState.CANCELLED, log_line="cancelled")


@transaction.atomic
def job_retry(*, job_id: int, user: AbstractBaseUser | None = None) -> Job:
    """Run a failed job again with the same parameters: it resumes from its latest checkpoint (the run folders
    are named by the job's parameters) with a fresh count of attempts."""
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.state != JobState.FAILED:
        raise ServiceError(f"only a failed job can be retried; job {job_id} is {job.state}")
    who = getattr(user, "username", "") or "someone"
    first_line = (job.error.strip().splitlines() or ["no error recorded"])[0]
    append_history(job, f"retried by {who} after attempt {job.attempt} failed: {first_line}")
    job.state = JobState.QUEUED
    job.attempt = 0
    job.error = ""
    job.finished_at = None
    job.enqueued_at = None
    job.save()
    transaction.on_commit(lambda: job_enqueue(job_id=job.pk))
    return job
