from __future__ import annotations

from rest_framework import serializers

from annotation_web.labeling.judgments import SCREEN_CHOICES
from annotation_web.labeling.models import Judgment, Pair, Project
from annotation_web.labeling.results import ReservedPair
from annotation_web.labeling.selectors import reservation_image_url


class ProjectSerializer(serializers.ModelSerializer):
    # Fields only engineers and managers read: an annotator who knows the gold rate is halfway to spotting gold.
    STAFF_ONLY = ("gold_rate",)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if not (getattr(user, "is_engineer", False) or getattr(user, "is_manager", False)):
            for field in self.STAFF_ONLY:
                data.pop(field, None)
        return data

    class Meta:
        model = Project
        fields = [
            "slug",
            "name",
            "description",
            "overlap",
            "reservation_ttl_seconds",
            "gold_rate",
            "resolution",
        ]


class NextPairRequestSerializer(serializers.Serializer):
    exclude = serializers.ListField(
        child=serializers.UUIDField(), required=False, default=list, max_length=10
    )


def served_pair_payload(reserved: ReservedPair) -> dict:
    """What an annotator sees: the LQ reference and two images by side. No model, no a/b, no gold flag, no
    storage key: the image URLs are handles of the reservation (`selectors.reservation_image_url`)."""
    rid = reserved.reservation_id
    return {
        "reservation": str(rid),
        "expires_at": reserved.expires_at.isoformat(),
        "reference_url": reservation_image_url(reservation_id=rid, slot="lq"),
        "left_url": reservation_image_url(reservation_id=rid, slot="left"),
        "right_url": reservation_image_url(reservation_id=rid, slot="right"),
        "instruction": reserved.instruction,
    }


class RenewRequestSerializer(serializers.Serializer):
    shown = serializers.BooleanField(
        required=False,
        default=False,
        help_text="The page just put this pair on screen: its clock starts now.",
    )


class RenewResponseSerializer(serializers.Serializer):
    reservation = serializers.UUIDField()
    expires_at = serializers.DateTimeField()


class ServedPairSerializer(serializers.Serializer):
    reservation = serializers.UUIDField()
    expires_at = serializers.DateTimeField()
    reference_url = serializers.CharField()
    left_url = serializers.CharField()
    right_url = serializers.CharField()
    instruction = serializers.CharField()


class NextPairResponseSerializer(serializers.Serializer):
    pair = ServedPairSerializer(allow_null=True)
    message = serializers.CharField()


class SubmitRequestSerializer(serializers.Serializer):
    reservation = serializers.UUIDField()
    choice = serializers.ChoiceField(choices=SCREEN_CHOICES)
    idempotency_key = serializers.CharField(max_length=100)
    client_duration_ms = serializers.IntegerField(
        min_value=0, max_value=24 * 3600 * 1000, required=False, allow_null=True
    )
    next = NextPairRequestSerializer(
        required=False, help_text="Also reserve the next pair, saving a round trip."
    )


class SubmitResponseSerializer(serializers.Serializer):
    judgment_id = serializers.IntegerField()
    reservation = serializers.UUIDField()
    choice = serializers.CharField()
    created = serializers.BooleanField()
    next = NextPairResponseSerializer(required=False)


class MyStatsSerializer(serializers.Serializer):
    judged_today = serializers.IntegerField()
    judged_total = serializers.IntegerField()
    skipped_total = serializers.IntegerField()
    left_in_queue = serializers.IntegerField()


class PairSerializer(serializers.ModelSerializer):
    a_key = serializers.CharField(source="candidate_a.image_key")
    b_key = serializers.CharField(source="candidate_b.image_key")
    a_model = serializers.CharField(source="candidate_a.model_version.__str__")
    b_model = serializers.CharField(source="candidate_b.model_version.__str__")

    class Meta:
        model = Pair
        fields = [
            "id",
            "face_input",
            "a_key",
            "b_key",
            "a_model",
            "b_model",
            "is_gold",
            "gold_outcome",
            "batch",
            "priority",
            "selection_reason",
            "selection_score",
            "open_slots",
            "judgment_count",
        ]


class JudgmentSerializer(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username")

    class Meta:
        model = Judgment
        fields = [
            "id",
            "pair",
            "annotator",
            "outcome",
            "shown_left",
            "is_gold",
            "gold_correct",
            "server_duration_ms",
            "client_duration_ms",
            "created_at",
        ]


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(required=False, help_text="A zip of face images, or one image.")
    s3_prefix = serializers.CharField(required=False, help_text="s3://bucket/prefix of face images.")
    batch = serializers.CharField(required=False, default="", max_length=100)
    instruction = serializers.CharField(required=False, default="", max_length=500)

    def validate(self, attrs):
        if bool(attrs.get("file")) == bool(attrs.get("s3_prefix")):
            raise serializers.ValidationError("send exactly one of `file` (zip or image) and `s3_prefix`")
        if attrs.get("s3_prefix") and not attrs["s3_prefix"].startswith("s3://"):
            raise serializers.ValidationError("s3_prefix must look like s3://bucket/prefix")
        return attrs
