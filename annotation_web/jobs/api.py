"""Engineers follow and cancel the jobs of their projects, of every kind.

A job is visible to the members of its project (`accounts.ProjectMembership`, reached through the project's
`memberships` relation so that jobs imports no other app); a job of another project answers 404, so detail and
cancel cannot be aimed at ids outside one's projects. Jobs without a project are for superusers.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_web.errors import NotFound
from annotation_web.jobs import selectors, services
from annotation_web.jobs.models import Job
from annotation_web.jobs.serializers import JobSerializer, WorkerSerializer
from annotation_web.permissions import IsEngineer


def _jobs_visible(user) -> QuerySet[Job]:
    # the rule the pages use too; each row's waiting_for in the same query
    return selectors.with_waiting_for(selectors.job_list_visible(user=user))


class JobListApi(generics.ListAPIView):
    permission_classes = [IsEngineer]
    serializer_class = JobSerializer

    def get_queryset(self):
        return _jobs_visible(self.request.user)


class JobDetailApi(generics.RetrieveAPIView):
    permission_classes = [IsEngineer]
    serializer_class = JobSerializer

    def get_queryset(self):
        return _jobs_visible(self.request.user)


class JobCancelApi(APIView):
    permission_classes = [IsEngineer]

    @extend_schema(request=None, responses=JobSerializer)
    def post(self, request, pk: int):
        if not _jobs_visible(request.user).filter(pk=pk).exists():
            raise NotFound(f"no job {pk}")
        return Response(JobSerializer(services.job_cancel(job_id=pk)).data)


class JobRetryApi(APIView):
    """Run a failed job again (same parameters; it resumes from its latest checkpoint)."""

    permission_classes = [IsEngineer]

    @extend_schema(request=None, responses=JobSerializer)
    def post(self, request, pk: int):
        if not _jobs_visible(request.user).filter(pk=pk).exists():
            raise NotFound(f"no job {pk}")
        return Response(JobSerializer(services.job_retry(job_id=pk, user=request.user)).data)


class WorkerListApi(APIView):
    """The live workers and, per queue, how many consume it (0: its jobs wait for nobody)."""

    permission_classes = [IsEngineer]

    @extend_schema(
        request=None,
        responses=inline_serializer(
            "Workers",
            {
                "queues": serializers.DictField(child=serializers.IntegerField()),
                "workers": WorkerSerializer(many=True),
            },
        ),
    )
    def get(self, request):
        workers = selectors.workers_alive()
        return Response(
            {"queues": selectors.queues_alive(), "workers": WorkerSerializer(workers, many=True).data}
        )
