"""Engineers and managers read the model registry."""

from __future__ import annotations

from rest_framework import generics

from annotation_web.permissions import IsEngineerOrManager
from annotation_web.registry import selectors
from annotation_web.registry.serializers import ModelVersionSerializer


class ModelVersionListApi(generics.ListAPIView):
    permission_classes = [IsEngineerOrManager]
    serializer_class = ModelVersionSerializer

    def get_queryset(self):
        return selectors.model_version_list(kind=self.request.query_params.get("kind"))
