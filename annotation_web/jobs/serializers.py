from rest_framework import serializers

from annotation_web.jobs.models import Job


class JobSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)  # type: ignore[var-annotated]

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
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
