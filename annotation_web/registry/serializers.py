from rest_framework import serializers

from annotation_web.registry.models import ModelVersion


class ModelVersionSerializer(serializers.ModelSerializer):
    # A declared field (DRF's metaclass takes it off the class), not Field.parent.
    parent = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)  # type: ignore[assignment,var-annotated]
    lineage = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "kind",
            "name",
            "version",
            "description",
            "artifact_key",
            "parent",
            "lineage",
            "metrics",
            "created_at",
        ]

    def get_lineage(self, version: ModelVersion) -> dict:
        return version.config.get("lineage", {})
