from rest_framework import serializers

from annotation_web.jobs import kinds, selectors
from annotation_web.jobs.models import Job, WorkerPresence


class JobSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)  # type: ignore[var-annotated]
    max_attempts = serializers.SerializerMethodField()
    waiting_for = serializers.SerializerMethodField(
        help_text="The running job of the same kind and project this queued job waits for (one runs at a time)."
    )
    queue_has_live_worker = serializers.SerializerMethodField(
        help_text="Whether a live worker consumes the job's queue (false: nobody would run it now)."
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "state",
            "project",
            "params",
            "outputs",
            "progress_done",
            "progress_total",
            "log_tail",
            "history",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "queue",
            "attempt",
            "max_attempts",
            "worker",
            "heartbeat_at",
            "lease_expires_at",
            "waiting_for",
            "queue_has_live_worker",
        ]

    def get_max_attempts(self, job: Job) -> int:
        spec = kinds.find(job.kind)
        return spec.max_attempts if spec is not None else kinds.DEFAULT_MAX_ATTEMPTS

    def get_waiting_for(self, job: Job) -> int | None:
        return selectors.job_waiting_for(job)

    def get_queue_has_live_worker(self, job: Job) -> bool:
        # Read once per response (a list shares this serializer across its rows).
        if not hasattr(self, "_queues_alive"):
            self._queues_alive = selectors.queues_alive()
        return self._queues_alive.get(job.queue, 0) > 0


class WorkerSerializer(serializers.ModelSerializer):
    class Meta:
        model = WorkerPresence
        fields = ["name", "queues", "hostname", "pid", "started_at", "last_seen_at"]
