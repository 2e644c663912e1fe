"""Validating request bodies against a deployment's ``inputs=`` schema, before any container runs."""

from __future__ import annotations

import json
from typing import Any

from ..schema import SchemaError, validate
from ._errors import ApiError


def check_inputs(description: dict[str, Any], body: bytes) -> None:
    """Raise a 422 naming the field and the reason when ``body`` does not fit."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError as exc:
        raise ApiError(422, f"request body is not valid JSON: {exc}") from None
    try:
        validate(description, payload)
    except SchemaError as exc:
        raise ApiError(422, str(exc), "ValidationError") from None
