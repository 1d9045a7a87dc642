from rest_framework import generics

from annotation_web.accounts.permissions import IsEngineer
from annotation_web.jobs.models import Job
from annotation_web.jobs.serializers import JobSerializer


class JobListApi(generics.ListAPIView):
    permission_classes = [IsEngineer]
    serializer_class = JobSerializer
    queryset = Job.objects.select_related("project").order_by("-created_at")


class JobDetailApi(generics.RetrieveAPIView):
    permission_classes = [IsEngineer]
    serializer_class = JobSerializer
    queryset = Job.objects.select_related("project")
