"""Recovering lost runs (a beat task every `JOB_REAP_SECONDS`):

- a RUNNING job whose lease expired lost its worker (OOM, SIGKILL, a preempted host): it goes back to the
  queue and its next attempt resumes from its latest checkpoint, or, after the kind's `max_attempts`, fails
  with the reason;
- a QUEUED job whose message was never sent (the broker was down) or was sent long ago (the filesystem
  broker drops the message of a killed worker) is sent again — a duplicate message does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation_web.jobs import kinds
from annotation_web.jobs.models import Job, JobState
from annotation_web.jobs.runs import killed_reason
from annotation_web.jobs.services import job_enqueue, job_transition


@dataclass
class Reaped:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)


def _reap_expired(job_id: int, reaped: Reaped) -> None:
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        now = timezone.now()
        if job is None or job.state != JobState.RUNNING:
            return
        if job.lease_expires_at is not None and job.lease_expires_at >= now:
            return  # renewed since the scan
        spec = kinds.find(job.kind)
        limit = spec.max_attempts if spec is not None else 1
        if job.attempt >= limit:
            reason = killed_reason(job)
            job_transition(job_id=job.pk, to_state=JobState.FAILED, error=reason, log_line=reason)
            reaped.failed.append(job.pk)
            return
        seen = f"{job.heartbeat_at:%H:%M:%S}" if job.heartbeat_at else "never"
        job_transition(
            job_id=job.pk,
            to_state=JobState.QUEUED,
            log_line=f"attempt {job.attempt} lost: {job.worker} stopped heartbeating (last {seen}); requeued",
        )
        Job.objects.filter(pk=job.pk).update(lease_expires_at=None, enqueued_at=None)
        transaction.on_commit(lambda: job_enqueue(job_id=job_id))
        reaped.requeued.append(job.pk)


def jobs_reap() -> Reaped:
    now = timezone.now()
    reaped = Reaped()
    expired = Job.objects.filter(state=JobState.RUNNING).filter(
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True)
    )
    for job_id in expired.values_list("pk", flat=True):
        _reap_expired(job_id, reaped)
    stale = now - timedelta(seconds=settings.JOB_RESEND_SECONDS)
    unsent = Job.objects.filter(state=JobState.QUEUED).filter(
        Q(enqueued_at__isnull=True, created_at__lt=now - timedelta(seconds=settings.JOB_REAP_SECONDS))
        | Q(enqueued_at__lt=stale)
    )
    for job_id in unsent.values_list("pk", flat=True):
        if job_enqueue(job_id=job_id):
            reaped.resent.append(job_id)
    return reaped
