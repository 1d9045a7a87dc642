"""Engineers follow and cancel jobs of every kind."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_web.jobs import selectors, services
from annotation_web.jobs.serializers import JobSerializer
from annotation_web.permissions import IsEngineer


class JobListApi(generics.ListAPIView):
    permission_classes = [IsEngineer]
    serializer_class = JobSerializer

    def get_queryset(self):
        return selectors.job_list()


class JobDetailApi(generics.RetrieveAPIView):
    permission_classes = [IsEngineer]
    serializer_class = JobSerializer

    def get_queryset(self):
        return selectors.job_list()


class JobCancelApi(APIView):
    permission_classes = [IsEngineer]

    @extend_schema(request=None, responses=JobSerializer)
    def post(self, request, pk: int):
        return Response(JobSerializer(services.job_cancel(job_id=pk)).data)
