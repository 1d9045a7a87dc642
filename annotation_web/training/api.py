"""Engineers trigger the ML loop's jobs (following and cancelling jobs is `jobs.api`, the model list
`registry.api`)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_web.jobs.serializers import JobSerializer
from annotation_web.labeling import selectors
from annotation_web.permissions import IsEngineer
from annotation_web.training import services


class GenerateRequest(serializers.Serializer):
    restorer_id = serializers.IntegerField()
    reward_id = serializers.IntegerField(required=False, allow_null=True)
    input_ids = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=100_000)
    samples_per_input = serializers.IntegerField(default=4, min_value=2, max_value=16)
    pairs_budget = serializers.IntegerField(required=False, min_value=1)
    random_fraction = serializers.FloatField(default=0.2, min_value=0.0, max_value=1.0)
    num_steps = serializers.IntegerField(default=20, min_value=1, max_value=1000)
    eta = serializers.FloatField(default=0.0, min_value=0.0, max_value=1.0)
    seed = serializers.IntegerField(default=0)


class RewardRequest(serializers.Serializer):
    size = serializers.ChoiceField(choices=["tiny", "small", "gpu"], default="small")
    max_steps = serializers.IntegerField(default=2000, min_value=1)
    seed = serializers.IntegerField(default=0)
    name = serializers.SlugField(required=False, default="")


class RLRequest(serializers.Serializer):
    restorer_id = serializers.IntegerField()
    reward_id = serializers.IntegerField()
    preset = serializers.ChoiceField(choices=["test", "tiny", "base"], default="tiny")
    overrides = serializers.DictField(required=False, default=dict)


class _JobCreateApi(APIView):
    permission_classes = [IsEngineer]
    request_serializer: type[serializers.Serializer]

    def create(self, *, project, user, data):
        raise NotImplementedError

    def post(self, request, slug: str):
        project = selectors.project_get(slug=slug)
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
