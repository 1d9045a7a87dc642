"""REST endpoints. Views validate, call one service or selector, and serialise; nothing else."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_web.accounts.permissions import IsEngineer, IsEngineerOrManager
from annotation_web.jobs.serializers import JobSerializer
from annotation_web.labeling import judgments, queue, selectors
from annotation_web.labeling.errors import LabelingError
from annotation_web.labeling.import_jobs import import_job_create
from annotation_web.labeling.serializers import (
    ImportRequestSerializer,
    JudgmentSerializer,
    MyStatsSerializer,
    NextPairRequestSerializer,
    NextPairResponseSerializer,
    PairSerializer,
    ProjectSerializer,
    SubmitRequestSerializer,
    SubmitResponseSerializer,
    served_pair_payload,
)

QUEUE_EMPTY_MESSAGE = "No pairs left for you in this project. Thank you! Check back later for new ones."


def _next_pair_payload(*, user, project, exclude) -> dict:
    reserved = queue.pair_reserve_next(annotator=user, project=project, exclude_reservations=exclude)
    if reserved is None:
        return {"pair": None, "message": QUEUE_EMPTY_MESSAGE}
    return {"pair": served_pair_payload(reserved), "message": ""}


class ProjectListApi(generics.ListAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        return selectors.project_list()


class NextPairApi(APIView):
    @extend_schema(request=NextPairRequestSerializer, responses=NextPairResponseSerializer)
    def post(self, request, slug: str):
        body = NextPairRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        project = selectors.project_get(slug=slug)
        return Response(
            _next_pair_payload(user=request.user, project=project, exclude=body.validated_data["exclude"])
        )


class SubmitJudgmentApi(APIView):
    @extend_schema(
        request=SubmitRequestSerializer,
        responses={201: SubmitResponseSerializer, 200: SubmitResponseSerializer},
    )
    def post(self, request):
        body = SubmitRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        result = judgments.judgment_submit(
            annotator=request.user,
            reservation_id=data["reservation"],
            choice=data["choice"],
            idempotency_key=data["idempotency_key"],
            client_duration_ms=data.get("client_duration_ms"),
        )
        payload = {
            "judgment_id": result.judgment_id,
            "reservation": str(result.reservation_id),
            "choice": data["choice"],
            "created": result.created,
        }
        if "next" in data:
            project = selectors.project_get_by_id(pk=result.project_id)
            try:
                payload["next"] = _next_pair_payload(
                    user=request.user, project=project, exclude=data["next"]["exclude"]
                )
            except LabelingError as exc:
                # The judgment is committed: a refused next pair must not turn the submit into a 4xx.
                payload["next"] = {"pair": None, "message": exc.message}
        return Response(payload, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class MyStatsApi(APIView):
    @extend_schema(responses=MyStatsSerializer)
    def get(self, request, slug: str):
        project = selectors.project_get(slug=slug)
        return Response(selectors.annotator_stats(annotator=request.user, project=project))


class PairListApi(generics.ListAPIView):
    permission_classes = [IsEngineer]
    serializer_class = PairSerializer

    def get_queryset(self):
        return selectors.pairs_for_engineer(project=selectors.project_get(slug=self.kwargs["slug"]))


class JudgmentListApi(generics.ListAPIView):
    permission_classes = [IsEngineer]
    serializer_class = JudgmentSerializer

    def get_queryset(self):
        return selectors.judgments_for_engineer(project=selectors.project_get(slug=self.kwargs["slug"]))


class AgreementApi(APIView):
    permission_classes = [IsEngineerOrManager]

    def get(self, request, slug: str):
        project = selectors.project_get(slug=slug)
        return Response(
            {
                "agreement": selectors.project_agreement(project=project),
                "annotators": selectors.annotators_overview(project=project),
            }
        )


class DashboardApi(APIView):
    """The numbers behind the managers' dashboard page, for their own tools."""

    permission_classes = [IsEngineerOrManager]

    def get(self, request, slug: str):
        return Response(selectors.dashboard_overview(project=selectors.project_get(slug=slug)))


class ExportPreferencesApi(APIView):
    """JSONL stream of the preference export contract (one judgment a line; skips are not exported)."""

    permission_classes = [IsEngineer]

    @extend_schema(responses={(200, "application/x-ndjson"): str})
    def get(self, request, slug: str):
        project = selectors.project_get(slug=slug)
        include_gold = request.query_params.get("include_gold", "true").lower() != "false"
        lines = (
            json.dumps(row) + "\n"
            for row in selectors.preference_export_rows(project=project, include_gold=include_gold)
        )
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-preferences.jsonl"'
        return response


class ImportApi(APIView):
    permission_classes = [IsEngineer]
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(request=ImportRequestSerializer, responses={202: JobSerializer})
    def post(self, request, slug: str):
        project = selectors.project_get(slug=slug)
        body = ImportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        upload = data.get("file")
        if upload is not None and upload.size > settings.IMPORT_MAX_UPLOAD_BYTES:
            raise ValidationError({"file": f"upload is over {settings.IMPORT_MAX_UPLOAD_BYTES} bytes"})
        job = import_job_create(
            project=project,
            user=request.user,
            upload_name=upload.name if upload else "",
            upload_bytes=upload.read() if upload else None,
            s3_prefix=data.get("s3_prefix", ""),
            batch=data["batch"],
            instruction=data["instruction"],
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
