"""The error answers any API route may give, declared once for the OpenAPI document.

The gateway answers every error with one shape (``_errors``), from checks
shared by all routes (tokens, roles, workspaces, quotas, body limits) as much
as from each route's own. Declaring them once, on the application, keeps the
published document true for every route, including routes added later, so
clients and schema-driven tests can rely on it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    type: str
    message: str
    # A 503/504 that ended a wait for a container: why it waited (the backlog reason ``cove events`` shows).
    waiting_reason: str | None = None


class ErrorBody(BaseModel):
    """``{"error": {"type", "message"}}``; some errors add fields of their own beside these."""

    error: ErrorDetail


_MEANINGS = {
    400: "Malformed request: a name, path or hash that cannot be used",
    401: "Missing or unknown token",
    403: "The token may not do this",
    404: "No such object in this workspace",
    409: "In conflict with the object's current state",
    413: "The request body is over the limit",
    422: "Invalid arguments",
    429: "A quota or rate limit was reached",
    503: "Not available now; retry later",
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": meaning} for status, meaning in _MEANINGS.items()
}
