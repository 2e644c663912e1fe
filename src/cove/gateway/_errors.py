"""One shape for every error the gateway returns: ``{"error": {"type", "message"}}``."""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """An error with an HTTP status and a message meant for the user."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
        fields: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_ or _DEFAULT_TYPES.get(status, "Error")
        self.headers = headers or {}
        self.fields = fields or {}  # typed extras beside type and message (``waiting_reason``)

    def body(self) -> bytes:
        """The JSON answer of this error, its extra fields included."""
        return error_body(self.status, self.message, self.type, **self.fields)


_DEFAULT_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    422: "InvalidArguments",
    429: "TooManyRequests",
    500: "InternalError",
    502: "ContainerFailed",
    503: "Unavailable",
    504: "Timeout",
}


def error_body(status: int, message: str, type_: str | None = None, **extra: Any) -> bytes:
    return json.dumps(
        {"error": {"type": type_ or _DEFAULT_TYPES.get(status, "Error"), "message": message, **extra}}
    ).encode()
