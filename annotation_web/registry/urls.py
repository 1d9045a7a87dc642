"""The registry's own API routes (included at the site root by `annotation_web.urls`)."""

from django.urls import path

from annotation_web.registry import api

urlpatterns = [
    path(
        "api/models/<int:pk>/artifact.zip", api.ModelArtifactDownloadApi.as_view(), name="api-model-artifact"
    ),
]
