"""REST endpoints. Views validate, call one service or selector, and serialise; nothing else."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle, UserRateThrottle
from rest_framework.views import APIView

from annotation_web.accounts.permissions import IsEngineer, IsEngineerOrManager
from annotation_web.api_errors import ErrorSerializer
from annotation_web.jobs.serializers import JobSerializer
from annotation_web.labeling import access, judgments, queue, selectors
from annotation_web.labeling.errors import LabelingError
from annotation_web.labeling.import_jobs import import_job_create
from annotation_web.labeling.models import Side
from annotation_web.labeling.serializers import (
    ImportRequestSerializer,
    JudgmentSerializer,
    MyStatsSerializer,
    NextPairRequestSerializer,
    NextPairResponseSerializer,
    PairSerializer,
    ProjectSerializer,
    RenewRequestSerializer,
    RenewResponseSerializer,
    SubmitRequestSerializer,
    SubmitResponseSerializer,
    served_pair_payload,
)
from annotation_web.parsers import PayloadTooLarge, SafeJSONParser

QUEUE_EMPTY_MESSAGE = "No pairs left for you in this project. Thank you! Check back later for new ones."


def _next_pair_payload(*, user, project, exclude) -> dict:
    reserved = queue.pair_reserve_next(annotator=user, project=project, exclude_reservations=exclude)
    if reserved is None:
        return {"pair": None, "message": QUEUE_EMPTY_MESSAGE}
    return {"pair": served_pair_payload(reserved), "message": ""}


def _screen_choice(*, outcome: str, shown_left: str) -> str:
    """The screen choice (left / right / tie / both_bad / skip) a stored outcome was given as."""
    if outcome in (Side.A, Side.B):
        return "left" if outcome == shown_left else "right"
    return outcome


class ProjectListApi(generics.ListAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        return access.projects_visible(user=self.request.user)


class NextPairApi(APIView):
    @extend_schema(request=NextPairRequestSerializer, responses=NextPairResponseSerializer)
    def post(self, request, slug: str):
        body = NextPairRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        project = access.project_get_for_member(user=request.user, slug=slug)
        return Response(
            _next_pair_payload(user=request.user, project=project, exclude=body.validated_data["exclude"])
        )


class SubmitJudgmentApi(APIView):
    @extend_schema(
        request=SubmitRequestSerializer,
        responses={
            201: SubmitResponseSerializer,
            200: SubmitResponseSerializer,
            409: ErrorSerializer,
            410: ErrorSerializer,
        },
    )
    def post(self, request):
        body = SubmitRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        # Membership: checked inside `judgment_submit` (in the fast path's own statement).
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
            # What was stored: a repeat of the key with another choice gets the first answer back, not its own.
            "choice": _screen_choice(outcome=result.outcome, shown_left=result.shown_left),
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


class RenewReservationApi(APIView):
    """Keep the pair on screen reserved while its annotator is there; `shown` starts a prefetched pair's clock."""

    @extend_schema(
        request=RenewRequestSerializer,
        responses={200: RenewResponseSerializer, 409: ErrorSerializer, 410: ErrorSerializer},
    )
    def post(self, request, reservation):
        body = RenewRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if access.reservation_outside_membership(user=request.user, reservation_id=reservation):
            raise NotFound("no such reservation")
        renewed = judgments.reservation_renew(
            annotator=request.user, reservation_id=reservation, shown=body.validated_data["shown"]
        )
        return Response(
            {"reservation": str(renewed.reservation_id), "expires_at": renewed.expires_at.isoformat()}
        )


class MyStatsApi(APIView):
    @extend_schema(responses=MyStatsSerializer)
    def get(self, request, slug: str):
        project = access.project_get_for_member(user=request.user, slug=slug)
        return Response(selectors.annotator_stats(annotator=request.user, project=project))


class PairListApi(generics.ListAPIView):
    permission_classes = [IsEngineer]
    serializer_class = PairSerializer

    def get_queryset(self):
        return selectors.pairs_for_engineer(
            project=access.project_get_for_member(user=self.request.user, slug=self.kwargs["slug"])
        )


class JudgmentListApi(generics.ListAPIView):
    permission_classes = [IsEngineer]
    serializer_class = JudgmentSerializer

    def get_queryset(self):
        return selectors.judgments_for_engineer(
            project=access.project_get_for_member(user=self.request.user, slug=self.kwargs["slug"])
        )


class AgreementApi(APIView):
    permission_classes = [IsEngineerOrManager]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        project = access.project_get_for_member(user=request.user, slug=slug)
        return Response(
            {
                "agreement": selectors.project_agreement(project=project),
                "annotators": selectors.annotators_overview(project=project),
            }
        )


class DashboardApi(APIView):
    """The numbers behind the managers' dashboard page, for their own tools."""

    permission_classes = [IsEngineerOrManager]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        return Response(
            selectors.dashboard_overview(project=access.project_get_for_member(user=request.user, slug=slug))
        )


class _ErrorsAsJson(DefaultContentNegotiation):
    """`?format=` names the export's file format here (jsonl, parquet), not a renderer: every answer that is not
    the file itself (a refusal, an error) is JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


# The export's file formats: media type and file name suffix.
EXPORT_FORMATS = {
    "jsonl": ("application/x-ndjson", "jsonl"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
}


class ExportPreferencesApi(APIView):
    """The preference export contract (one judgment a row; skips are not exported) as a JSONL stream (the
    default) or, with `?format=parquet`, one Parquet file of the same rows and columns."""

    permission_classes = [IsEngineer]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _ErrorsAsJson

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(EXPORT_FORMATS), description="File format (jsonl)."),
            OpenApiParameter("include_gold", bool, description="Export gold judgments too (true)."),
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
        },
    )
    def get(self, request, slug: str):
        project = access.project_get_for_member(user=request.user, slug=slug)
        file_format = request.query_params.get("format", "jsonl") or "jsonl"
        if file_format not in EXPORT_FORMATS:
            raise ValidationError({"format": [f"one of {', '.join(EXPORT_FORMATS)}, not {file_format!r}"]})
        include_gold = request.query_params.get("include_gold", "true").lower() != "false"
        content_type, suffix = EXPORT_FORMATS[file_format]
        response: StreamingHttpResponse
        if file_format == "parquet":
            handle = selectors.preference_export_parquet(project=project, include_gold=include_gold)
            response = FileResponse(handle, content_type=content_type)
        else:
            lines = (
                json.dumps(row) + "\n"
                for row in selectors.preference_export_rows(project=project, include_gold=include_gold)
            )
            response = StreamingHttpResponse(lines, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-preferences.{suffix}"'
        return response


class ImportApi(APIView):
    permission_classes = [IsEngineer]
    parser_classes = [MultiPartParser, FormParser, SafeJSONParser]
    throttle_scope = "jobs"
    # The defaults (anon, user) plus the job scope.
    throttle_classes = [AnonRateThrottle, UserRateThrottle, ScopedRateThrottle]

    @extend_schema(request=ImportRequestSerializer, responses={202: JobSerializer})
    def post(self, request, slug: str):
        project = access.project_get_for_member(user=request.user, slug=slug)
        # Refused by its declared length before a byte of the body is read (and a body without one refused):
        # the multipart parser would otherwise write the whole upload to a temporary file first.
        _refuse_large_body(request, limit=settings.IMPORT_MAX_UPLOAD_BYTES + 64 * 1024)
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
            upload=upload,
            s3_prefix=data.get("s3_prefix", ""),
            batch=data["batch"],
            instruction=data["instruction"],
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


def _refuse_large_body(request, *, limit: int) -> None:
    raw = request.META.get("CONTENT_LENGTH") or "0"
    try:
        length = int(raw)
    except ValueError as exc:
        raise ValidationError({"detail": "invalid Content-Length"}) from exc
    if length > limit:
        raise PayloadTooLarge(f"the request body is over {limit} bytes")
