"""Engineers trigger the ML loop's jobs (following and cancelling jobs is `jobs.api`, the model list
`registry.api`).

Every field of a request is checked against the bounds of the config it feeds before a job is queued (a worker
should never be the first to find a request wrong), requests are JSON objects only (a form body would leave
every field to its default), and job creation has a throttle scope of its own (`jobs`).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle, UserRateThrottle
from rest_framework.views import APIView

from annotation_web import ml_bridge
from annotation_web.jobs.serializers import JobSerializer
from annotation_web.labeling import access
from annotation_web.parsers import SafeJSONParser
from annotation_web.permissions import IsEngineer
from annotation_web.training import services

MAX_SEED = 2**31 - 1
REWARD_MAX_STEPS = 200_000
GENERATE_MAX_INPUTS = 100_000
GENERATE_MAX_PAIRS = 1_000_000


class GenerateRequest(serializers.Serializer):
    restorer_id = serializers.IntegerField(min_value=1)
    reward_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    input_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=GENERATE_MAX_INPUTS
    )
    samples_per_input = serializers.IntegerField(default=4, min_value=2, max_value=16)
    pairs_budget = serializers.IntegerField(required=False, min_value=1, max_value=GENERATE_MAX_PAIRS)
    random_fraction = serializers.FloatField(default=0.2, min_value=0.0, max_value=1.0)
    num_steps = serializers.IntegerField(default=20, min_value=1, max_value=1000)
    eta = serializers.FloatField(default=0.0, min_value=0.0, max_value=1.0)
    seed = serializers.IntegerField(default=0, min_value=0, max_value=MAX_SEED)


class RewardRequest(serializers.Serializer):
    size = serializers.ChoiceField(choices=["tiny", "small", "gpu"], default="small")
    max_steps = serializers.IntegerField(default=2000, min_value=1, max_value=REWARD_MAX_STEPS)
    seed = serializers.IntegerField(default=0, min_value=0, max_value=MAX_SEED)
    name = serializers.SlugField(required=False, default="", allow_blank=True, max_length=100)

    def validate_size(self, value: str) -> str:
        if value not in ml_bridge.reward_sizes():
            raise serializers.ValidationError(f"not a reward-model size: {value!r}")
        return value


class RLRequest(serializers.Serializer):
    restorer_id = serializers.IntegerField(min_value=1)
    reward_id = serializers.IntegerField(min_value=1)
    preset = serializers.ChoiceField(choices=["test", "tiny", "base"], default="tiny")
    overrides = serializers.DictField(
        required=False, default=dict, help_text="Fields of rl_trainer.config.RLConfig and their values."
    )

    def validate(self, attrs: dict) -> dict:
        try:
            ml_bridge.rl_config_validate(preset=attrs["preset"], overrides=attrs.get("overrides") or {})
        except ValueError as exc:
            raise serializers.ValidationError({"overrides": [str(exc)]}) from exc
        return attrs


class _JobCreateApi(APIView):
    permission_classes = [IsEngineer]
    parser_classes = [SafeJSONParser]
    throttle_scope = "jobs"
    # The defaults (anon, user) plus the job scope.
    throttle_classes = [AnonRateThrottle, UserRateThrottle, ScopedRateThrottle]
    request_serializer: type[serializers.Serializer]

    def create(self, *, project, user, data):
        raise NotImplementedError

    def post(self, request, slug: str):
        project = access.project_get_for_member(user=request.user, slug=slug)
        body = self.request_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = self.create(project=project, user=request.user, data=body.validated_data)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class GenerateJobApi(_JobCreateApi):
    request_serializer = GenerateRequest

    @extend_schema(request=GenerateRequest, responses={202: JobSerializer})
    def post(self, request, slug: str):
        return super().post(request, slug)

    def create(self, *, project, user, data):
        return services.generation_job_create(project=project, user=user, **data)


class RewardJobApi(_JobCreateApi):
    request_serializer = RewardRequest

    @extend_schema(request=RewardRequest, responses={202: JobSerializer})
    def post(self, request, slug: str):
        return super().post(request, slug)

    def create(self, *, project, user, data):
        return services.reward_job_create(project=project, user=user, **data)


class RLJobApi(_JobCreateApi):
    request_serializer = RLRequest

    @extend_schema(request=RLRequest, responses={202: JobSerializer})
    def post(self, request, slug: str):
        return super().post(request, slug)

    def create(self, *, project, user, data):
        return services.rl_job_create(project=project, user=user, **data)
