"""Engineers and managers read the model registry and download model artifacts."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from annotation_web.permissions import IsEngineerOrManager
from annotation_web.registry import downloads, selectors
from annotation_web.registry.serializers import ModelVersionSerializer


class ModelVersionListApi(generics.ListAPIView):
    permission_classes = [IsEngineerOrManager]
    serializer_class = ModelVersionSerializer

    def get_queryset(self):
        return selectors.model_version_list(kind=self.request.query_params.get("kind"))


class _ErrorsAsJson(DefaultContentNegotiation):
    """The zip is the answer whatever the client accepts (`Accept: application/zip` included); every other answer
    (a refusal, an error) is JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ModelArtifactDownloadApi(APIView):
    """A version's artifact folder (config, weights, metrics) as a zip, streamed from the storage, for the
    engineers and managers who may read the version (`selectors.model_version_get_visible`: another project's
    version answers 404, as an unknown id does)."""

    permission_classes = [IsEngineerOrManager]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _ErrorsAsJson

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request, pk: int):
        version = selectors.model_version_get_visible(user=request.user, pk=pk)
        files = downloads.artifact_file_keys(version=version)
        folder = downloads.artifact_download_name(version=version)
        response = StreamingHttpResponse(
            downloads.artifact_zip_chunks(files=files, folder=folder), content_type="application/zip"
        )
        response["Content-Disposition"] = f'attachment; filename="{folder}.zip"'
        return response
