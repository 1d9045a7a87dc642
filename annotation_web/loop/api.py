"""The loop's API: the policy (GET/PUT), its events, the history of versions in use, promote and roll back, the
human leaderboard, and the judgment snapshots reward models are trained on (list, export).
Thin views: the serializers check the request, the services decide."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_web import ml_bridge
from annotation_web.labeling import access, snapshots
from annotation_web.loop import selectors, services
from annotation_web.loop.models import LoopEvent, LoopPolicy, VersionChange
from annotation_web.parsers import SafeJSONParser
from annotation_web.permissions import IsEngineer, IsEngineerOrManager

EVENTS_SHOWN = 200


class LoopPolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = LoopPolicy
        fields = [*services.POLICY_FIELDS, "updated_by", "updated_at"]
        read_only_fields = ["updated_by", "updated_at"]
        extra_kwargs = {
            "random_fraction": {"min_value": 0.0, "max_value": 1.0},
            "cross_version_fraction": {"min_value": 0.0, "max_value": 1.0},
            "agreement_share": {"min_value": 0.0, "max_value": 1.0},
            "tick_seconds": {"min_value": 1, "max_value": 7 * 24 * 3600},
            "held_out_fraction": {"min_value": 0.05, "max_value": 0.5},
            "eta": {"min_value": 0.0, "max_value": 1.0},
            "samples_per_input": {"min_value": 2, "max_value": 16},
            "pairs_budget": {"min_value": 1, "max_value": 100_000},
            "num_steps": {"min_value": 1, "max_value": 1000},
            "eval_seeds": {"min_value": 1, "max_value": 16},
            "psnr_drop_limit_db": {"min_value": 0.0},
            "baseline_psnr_drop_limit_db": {"min_value": 0.0},
            "min_new_judgments": {"min_value": 1},
            "reward_max_steps": {"min_value": 1, "max_value": 200_000},
            "reward_tolerance_se": {"min_value": 0.0, "max_value": 5.0},
            "leaderboard_min_judgments": {"min_value": 1},
        }

    def validate(self, attrs: dict) -> dict:
        merged = {**{f: getattr(self.instance, f) for f in services.POLICY_FIELDS}, **attrs}
        if merged["reward_size"] not in ml_bridge.reward_sizes():
            raise serializers.ValidationError(
                {"reward_size": [f"not a reward-model size: {merged['reward_size']!r}"]}
            )
        try:
            ml_bridge.rl_config_validate(preset=merged["rl_preset"], overrides=merged["rl_overrides"])
        except ValueError as exc:
            raise serializers.ValidationError({"rl_overrides": [str(exc)]}) from exc
        try:
            ml_bridge.restorer_train_config(
                config=merged["restorer_config"], overrides=merged["restorer_overrides"]
            )
        except ValueError as exc:
            raise serializers.ValidationError({"restorer_overrides": [str(exc)]}) from exc
        return attrs


class LoopEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = LoopEvent
        fields = ["id", "round", "decision", "reason", "inputs", "job", "created_at"]


class VersionChangeSerializer(serializers.ModelSerializer):
    version: serializers.Field = serializers.StringRelatedField()
    previous: serializers.Field = serializers.StringRelatedField()
    by: serializers.Field = serializers.StringRelatedField()

    class Meta:
        model = VersionChange
        fields = ["id", "kind", "action", "version", "version_id", "previous", "by", "reason", "created_at"]


class PromoteRequest(serializers.Serializer):
    restorer_id = serializers.IntegerField(required=False, min_value=1)
    reward_id = serializers.IntegerField(required=False, min_value=1)
    reason = serializers.CharField(max_length=2000)


class RollbackRequest(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["restorer", "reward"], default="restorer")
    reason = serializers.CharField(max_length=2000)


def _state_data(project) -> dict:
    state = selectors.loop_state_get(project=project)
    return {
        "round": state.round,
        "restorer_in_use": state.restorer_id,
        "reward_in_use": state.reward_id,
        "candidate": state.candidate_id,
        "job": state.job_id,
        "held_out_input_ids": state.held_out_input_ids,
        "ticked_at": state.ticked_at,
    }


class LoopPolicyApi(APIView):
    permission_classes = [IsEngineer]
    parser_classes = [SafeJSONParser]

    @extend_schema(responses={200: LoopPolicySerializer})
    def get(self, request, slug: str):
        project = access.project_get_for_member(user=request.user, slug=slug)
        policy = selectors.loop_policy_get(project=project)
        return Response({**LoopPolicySerializer(policy).data, "state": _state_data(project)})

    @extend_schema(request=LoopPolicySerializer, responses={200: LoopPolicySerializer})
    def put(self, request, slug: str):
        project = access.project_get_for_member(user=request.user, slug=slug)
        body = LoopPolicySerializer(
            selectors.loop_policy_get(project=project), data=request.data, partial=True
        )
        body.is_valid(raise_exception=True)
        policy = services.loop_policy_update(project=project, user=request.user, changes=body.validated_data)
        return Response({**LoopPolicySerializer(policy).data, "state": _state_data(project)})


class LoopEventsApi(APIView):
    permission_classes = [IsEngineerOrManager]

    @extend_schema(responses={200: LoopEventSerializer(many=True)})
    def get(self, request, slug: str):
        project = access.project_get_for_member(user=request.user, slug=slug)
        events = selectors.loop_events_list(project=project)[:EVENTS_SHOWN]
        changes = selectors.version_changes_list(project=project)[:EVENTS_SHOWN]
        return Response(
            {
                "state": _state_data(project),
                "events": LoopEventSerializer(events, many=True).data,
                "versions_in_use": VersionChangeSerializer(changes, many=True).data,
            }
        )


class LoopPromoteApi(APIView):
    permission_classes = [IsEngineer]
    parser_classes = [SafeJSONParser]

    @extend_schema(request=PromoteRequest, responses={200: VersionChangeSerializer})
    def post(self, request, slug: str):
        project = access.project_get_for_member(user=request.user, slug=slug)
        body = PromoteRequest(data=request.data)
        body.is_valid(raise_exception=True)
        change = services.loop_promote(project=project, user=request.user, **body.validated_data)
        return Response(VersionChangeSerializer(change).data)


class LoopRollbackApi(APIView):
    permission_classes = [IsEngineer]
    parser_classes = [SafeJSONParser]

    @extend_schema(request=RollbackRequest, responses={200: VersionChangeSerializer})
    def post(self, request, slug: str):
        project = access.project_get_for_member(user=request.user, slug=slug)
        body = RollbackRequest(data=request.data)
        body.is_valid(raise_exception=True)
        change = services.loop_rollback(project=project, user=request.user, **body.validated_data)
        return Response(VersionChangeSerializer(change).data)


class LeaderboardApi(APIView):
    """The project's restorer versions ranked by human judgments of cross-version pairs (Bradley–Terry with
    ties, bootstrap 95% intervals)."""

    permission_classes = [IsEngineerOrManager]

    @extend_schema(responses={200: dict})
    def get(self, request, slug: str):
        project = access.project_get_for_member(user=request.user, slug=slug)
        return Response(selectors.project_leaderboard_data(project=project))


def _snapshot_data(snapshot) -> dict:
    return {
        "number": snapshot.number,
        "count": snapshot.count,
        "up_to_judgment_id": snapshot.up_to_judgment_id,
        "sha256": snapshot.sha256,
        "schema_version": snapshot.schema_version,
        "created_at": snapshot.created_at,
        "export": reverse(
            "api-snapshot-export", kwargs={"slug": snapshot.project.slug, "number": snapshot.number}
        ),
    }


class SnapshotListApi(APIView):
    """The project's frozen judgment snapshots (what each reward model was trained on)."""

    permission_classes = [IsEngineer]

    @extend_schema(responses={200: dict})
    def get(self, request, slug: str):
        project = access.project_get_for_member(user=request.user, slug=slug)
        return Response(
            {
                "project": project.slug,
                "snapshots": [_snapshot_data(s) for s in snapshots.judgment_snapshot_list(project=project)],
            }
        )


class SnapshotExportApi(APIView):
    """A snapshot's rows as stored (canonical JSONL): the download's sha256 is the snapshot's."""

    permission_classes = [IsEngineer]

    @extend_schema(responses={(200, "application/x-ndjson"): str})
    def get(self, request, slug: str, number: int):
        project = access.project_get_for_member(user=request.user, slug=slug)
        snapshot = snapshots.judgment_snapshot_get(project=project, number=number)
        response = HttpResponse(
            snapshots.judgment_snapshot_bytes(snapshot), content_type="application/x-ndjson"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="{project.slug}-snapshot-{snapshot.number}.jsonl"'
        )
        response["X-Content-SHA256"] = snapshot.sha256
        return response
