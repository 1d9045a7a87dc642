"""Every refusal reaches the client as a 4xx with `{"error": code, "detail": message}`, never a 500."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from annotation_web.errors import ServiceError


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return Response({"error": exc.code, "detail": exc.message}, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        return Response({"error": "invalid", "detail": exc.messages}, status=status.HTTP_400_BAD_REQUEST)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "error" not in response.data:
        code = getattr(exc, "default_code", "error")
        response.data = {"error": code, "detail": response.data.get("detail", response.data)}
    return response
