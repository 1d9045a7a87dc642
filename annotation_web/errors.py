"""Refusals shared by every app: a service raises one, the API answers `{"error": code, "detail": message}`.

A neutral module (no app of the project, no Django model) so that the lowest layer, `jobs`, can raise the
same errors as the domain apps without importing them.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request a service refuses; `status` is the HTTP status the API answers with."""

    status = 400
    code = "invalid"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class StorageUnavailable(ServiceError):
    status = 507
    code = "storage_unavailable"
