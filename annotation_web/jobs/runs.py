"""Running a job: a worker claims the run (a lease), keeps it alive with heartbeats while the kind's runner
works, and records the outcome only while it still holds the run.

A claim takes a QUEUED job, or a RUNNING one whose lease expired (its worker died: Redis redelivers the
message, or the reaper queued it again); any other delivery does nothing, so duplicate messages are harmless.
Each claim is one attempt; after the kind's `max_attempts` the job fails with the reason instead of being run
forever. One job of a kind per project runs at a time (a database constraint): a second stays QUEUED, and is
sent again when the first stops.
"""

from __future__ import annotations

import socket
import threading
import time
import traceback
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from annotation_web.jobs import kinds
from annotation_web.jobs.models import Job, JobState
from annotation_web.jobs.services import (
    JobStopped,
    _locked,
    append_history,
    job_holds_run,
    job_progress_reporter,
    job_transition,
)


def worker_name(hostname: str | None = None) -> str:
    """Who holds a run: the Celery node name (or the host) and the process."""
    import os

    return f"{hostname or socket.gethostname()}:{os.getpid()}"


def lease_deadline():
    return timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS)


def killed_reason(job: Job) -> str:
    seen = f", last heartbeat {job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if job.heartbeat_at else ""
    return (
        f"killed {job.attempt} times while running (last on {job.worker or 'an unknown worker'}{seen}): "
        "out of memory, or the worker was stopped? Read the worker's log, then retry the job."
    )


def _claim(*, job_id: int, worker: str) -> Job | None:
    """This worker's run of the job (the next attempt), or None when the delivery should do nothing."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return None
        now = timezone.now()
        taking_over = job.state == JobState.RUNNING and (
            job.lease_expires_at is None or job.lease_expires_at < now
        )
        if job.state != JobState.QUEUED and not taking_over:
            return None  # finished, cancelled, or running under a live lease elsewhere
        spec = kinds.find(job.kind)
        if spec is None:
            job_transition(job_id=job.pk, to_state=JobState.FAILED, error=f"unknown job kind {job.kind!r}")
            return None
        if job.attempt >= spec.max_attempts:
            job_transition(
                job_id=job.pk, to_state=JobState.FAILED, error=killed_reason(job), log_line=killed_reason(job)
            )
            return None
        if job.project_id is not None:
            running = (
                Job.objects.filter(project_id=job.project_id, kind=job.kind, state=JobState.RUNNING)
                .exclude(pk=job.pk)
                .values_list("pk", flat=True)
                .first()
            )
            if running is not None:
                return None  # waits; sent again when job `running` stops (or by the reaper)
        previous = job.worker
        job.attempt += 1
        job.state = JobState.RUNNING
        job.worker = worker
        job.heartbeat_at = now
        job.lease_expires_at = lease_deadline()
        job.started_at = job.started_at or now
        line = f"attempt {job.attempt}/{spec.max_attempts} started on {worker}"
        if taking_over:
            line += f", taking over from {previous or 'a worker'} whose lease expired"
        elif job.attempt > 1:
            line += " after the previous attempt's worker died"
        append_history(job, line)
        try:
            with (
                transaction.atomic()
            ):  # a savepoint: a sibling claimed at the same instant wins the constraint
                job.save()
        except IntegrityError:
            return None
        return job


class LeaseKeeper:
    """Renews the run's lease every `JOB_HEARTBEAT_SECONDS` from a thread of its own (a runner may spend
    minutes inside one ML call), and answers the runner's `should_stop()` from the job's row.

    A task run eagerly (in the caller's process and transaction: tests, scripts) has no other worker to lose
    its run to, and a thread's connection would not see the caller's uncommitted row: no heartbeat then."""

    def __init__(self, job: Job, *, soft_time_limit: float | None, heartbeat: bool = True) -> None:
        self.job_id, self.attempt = job.pk, job.attempt
        self.started = time.monotonic()
        self.soft_time_limit = soft_time_limit
        self._done = threading.Event()
        self._thread = (
            threading.Thread(target=self._beat, name=f"lease-job-{job.pk}", daemon=True)
            if heartbeat
            else None
        )

    def __enter__(self) -> LeaseKeeper:
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=settings.JOB_HEARTBEAT_SECONDS * 2 + 5)

    def _beat(self) -> None:
        try:
            while not self._done.wait(settings.JOB_HEARTBEAT_SECONDS):
                held = Job.objects.filter(pk=self.job_id, state=JobState.RUNNING, attempt=self.attempt)
                if not held.update(heartbeat_at=timezone.now(), lease_expires_at=lease_deadline()):
                    return  # cancelled, or another attempt holds the job now: `should_stop()` tells the runner
        finally:
            connection.close()  # this thread's own connection

    @property
    def timed_out(self) -> bool:
        return self.soft_time_limit is not None and time.monotonic() - self.started > self.soft_time_limit

    def should_stop(self) -> bool:
        if self.timed_out:
            return True
        job = Job.objects.filter(pk=self.job_id).only("state", "attempt").first()
        return job is None or job.state != JobState.RUNNING or job.attempt != self.attempt


def _record_outcome(job: Job, outputs: dict[str, Any], keeper: LeaseKeeper) -> None:
    with transaction.atomic():
        row = _locked(job.pk)
        if row.attempt != job.attempt:
            return  # another attempt owns the job now
        if row.state not in (JobState.RUNNING, JobState.CANCELLED):
            return  # finished by `job_commit`, or handed back to the queue
        # A run that stopped early (cancelled, past its time limit) ends with what it had: partial outputs.
        stopped = row.state == JobState.CANCELLED or keeper.timed_out
        row.outputs = {**outputs, "partial": True} if stopped else outputs
        row.save(update_fields=["outputs"])
        if row.state == JobState.CANCELLED:
            return
        if keeper.timed_out:
            limit = f"{keeper.soft_time_limit:g} s"
            job_transition(
                job_id=job.pk, to_state=JobState.FAILED, error=f"stopped at its time limit ({limit})"
            )
        else:
            job_transition(job_id=job.pk, to_state=JobState.SUCCEEDED)


def job_run(*, job_id: int, worker: str | None = None) -> None:
    """What the worker does with a job id: claim the run, run the kind's runner under a lease, record the
    outcome. A runner's exception fails the job (the engineer reads it and may retry); a run that lost its
    job (cancelled, taken over) records nothing."""
    job = _claim(job_id=job_id, worker=worker or worker_name())
    if job is None:
        return
    spec = kinds.get(job.kind)
    from annotation_web.celery import app

    heartbeat = not app.conf.task_always_eager
    with LeaseKeeper(job, soft_time_limit=spec.soft_time_limit, heartbeat=heartbeat) as keeper:
        try:
            outputs = spec.runner(
                job=job, progress=job_progress_reporter(job_id=job_id), should_stop=keeper.should_stop
            )
        except JobStopped:
            return
        except Exception as exc:  # noqa: BLE001 - the job row records any failure for the engineer to read
            if job_holds_run(job):
                job_transition(
                    job_id=job_id, to_state=JobState.FAILED, error=f"{exc}\n{traceback.format_exc()}"
                )
            raise
    _record_outcome(job, outputs, keeper)
