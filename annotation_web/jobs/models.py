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
    # RUNNING -> RUNNING: a worker takes over a run whose lease expired; RUNNING -> QUEUED: the reaper hands such
    # a run back to the queue.
    JobState.RUNNING: (
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.RUNNING,
        JobState.QUEUED,
    ),
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
    # What happened to the run, kept whole (the log tail keeps only the latest lines): attempts, take-overs,
    # resumes from checkpoints and their steps, cancels, retries; one timestamped line each.
    history = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Routing and the lease: the queue the kind's task goes to; when its message was last sent (a QUEUED row
    # whose message was lost is sent again); the run held by one worker, renewed by heartbeats, taken over
    # by another worker (or handed back to the queue by the reaper) only once it expired.
    queue = models.CharField(max_length=32, default=kinds.DEFAULT_QUEUE)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveIntegerField(
        default=0, help_text="Runs started so far (a retry starts again at 0)."
    )
    worker = models.CharField(
        max_length=200, blank=True, help_text="The worker holding (or last holding) the run."
    )
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Set when the runner wrote its result (a model version, pairs): from then on the job is finishing and can
    # no longer be cancelled.
    committed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["state", "created_at"], name="job_state_created"),
            models.Index(fields=["state", "lease_expires_at"], name="job_state_lease"),
        ]
        constraints = [
            # One job of a kind per project runs at a time (two RL runs of one project would race for the
            # versions in use); a second waits QUEUED. Jobs without a project are not limited.
            models.UniqueConstraint(
                fields=["project", "kind"],
                condition=models.Q(state="running"),
                name="job_one_running_per_kind_project",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.state})"


class WorkerPresence(models.Model):
    """A worker process that says it is alive, and the queues it consumes (written by the worker every few
    seconds; a row not refreshed for `WORKER_ALIVE_SECONDS` is a dead worker)."""

    name = models.CharField(max_length=200, unique=True)
    queues = models.JSONField(default=list)
    hostname = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"worker {self.name} ({', '.join(self.queues)})"
