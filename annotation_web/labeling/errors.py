"""The labeling app's refusals. The shared ones live in `annotation_web.errors` (`LabelingError` is its base)."""

from annotation_web.errors import Conflict, Forbidden, NotFound, ServiceError, StorageUnavailable

LabelingError = ServiceError

__all__ = ["Conflict", "Expired", "Forbidden", "LabelingError", "NotFound", "StorageUnavailable"]


class Expired(LabelingError):
    status = 410
    code = "reservation_expired"
