class LabelingError(Exception):
    """A request the service refuses; `status` is the HTTP status the API answers with."""

    status = 400
    code = "invalid"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(LabelingError):
    status = 404
    code = "not_found"


class Forbidden(LabelingError):
    status = 403
    code = "forbidden"


class Conflict(LabelingError):
    status = 409
    code = "conflict"


class Expired(LabelingError):
    status = 410
    code = "reservation_expired"


class StorageUnavailable(LabelingError):
    status = 507
    code = "storage_unavailable"
