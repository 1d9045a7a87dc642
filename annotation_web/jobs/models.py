"""A job is a row with a state machine; the Celery task that runs it receives only its id.

What a job of each kind does is registered in `jobs.kinds` by the app owning the kind."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation_web.jobs import kinds


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)

ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    JobState.QUEUED: (JobState.RUNNING, JobState.CANCELLED, JobState.FAILED),
    JobState.RUNNING: (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.RUNNING),
    JobState.SUCCEEDED: (),
    JobState.FAILED: (JobState.QUEUED,),
    JobState.CANCELLED: (),
}


class Job(models.Model):
    # What the job does: a kind registered in `jobs.kinds` by the app that owns it (validated against it).
    kind = models.CharField(max_length=kinds.KIND_MAX_LENGTH, choices=kinds.choices)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    project = models.ForeignKey("labeling.Project", null=True, blank=True, on_delete=models.CASCADE)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    params = models.JSONField(default=dict, blank=True, help_text="Ids and settings the job was given.")
    outputs = models.JSONField(default=dict, blank=True, help_text="Ids of what the job made (lineage).")
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    log_tail = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "created_at"], name="job_state_created")]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.state})"
