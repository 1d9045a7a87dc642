"""Every refusal reaches the client as a 4xx with `{"error": code, "detail": message}`, never a 500.

Also what makes that true for hostile input: the JSON parser that turns a too-deep document into a 400 (the
standard library answers it with a RecursionError), a too-large body into a 413 (Django raises it as a
SuspiciousOperation, which would otherwise become an HTML page), and the JSON pages for the URLs no API view
answers (404, 500). The schema documents the error body on every operation.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, JsonResponse
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from annotation_web.errors import ServiceError
from annotation_web.parsers import PayloadTooLarge, SafeJSONParser

__all__ = ["PayloadTooLarge", "SafeJSONParser", "exception_handler"]


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return Response({"error": exc.code, "detail": exc.message}, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        return Response({"error": "invalid", "detail": exc.messages}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"error": "too_large", "detail": "The request body is too large."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, TooManyFieldsSent | SuspiciousOperation):
        return Response({"error": "bad_request", "detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "error" not in response.data:
        code = getattr(exc, "default_code", "error")
        response.data = {"error": code, "detail": response.data.get("detail", response.data)}
    elif response is not None and isinstance(response.data, list):
        response.data = {"error": getattr(exc, "default_code", "error"), "detail": response.data}
    return response


# --- the pages Django answers itself (no API view matched, or a crash): JSON under /api/ ------------------


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def json_or_html(status_code: int, code: str, message: str, fallback):
    def handler(request: HttpRequest, exception: Exception | None = None):
        if _wants_json(request):
            return JsonResponse({"error": code, "detail": message}, status=status_code)
        return fallback(request, exception) if exception is not None else fallback(request)

    return handler


# --- the schema ----------------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A short machine-readable code.")
    detail = serializers.JSONField(help_text="A message, or the refused fields with their messages.")


# The refusals every operation can answer (the view's own codes win where it documents them).
DOCUMENTED_ERRORS = ("400", "401", "403", "404", "429")


class ErrorDocumentingAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: Any = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        for code in DOCUMENTED_ERRORS:
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code)
        if self.method == "POST" and "413" not in responses:
            responses["413"] = self._get_response_for_code(ErrorSerializer, "413")
        return responses


def only_api_paths(endpoints: list) -> list:
    """drf-spectacular preprocessing hook: keep the endpoints under /api/."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/")]


# Strings the API refuses that the types alone would allow: DRF refuses a NUL in every CharField.
NO_NUL = "^[^\\u0000]*$"


def strings_without_nul(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: request strings say they may not hold a NUL, as the API refuses."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if not name.endswith("Request"):
            continue
        for prop in component.get("properties", {}).values():
            if prop.get("type") == "string" and not ({"format", "enum", "pattern"} & set(prop)):
                prop["pattern"] = NO_NUL
    return result
