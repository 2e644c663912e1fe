"""A call's class constructor parameters as the gateway reads them (``cove._wire.parameters``).

An endpoint call names them in the ``X-Cove-Parameters`` header; a pickled call
in its payload envelope, read by the dispatcher (``call_parameters``). Either
way they are JSON, checked against what the class declared, with defaults
filled in, so the pool a call lands in is decided without unpickling anything.
What does not fit is the caller's mistake: a 422 that names the parameter.
"""

from __future__ import annotations

from typing import Any

from .._wire.parameters import HEADER, ParameterError, check_declared, loads, resolve
from ..scheduler import call_parameters
from ..store import Deployment
from ._errors import ApiError

_HEADER = HEADER.lower().encode()


def header_parameters(deployment: Deployment, headers: dict[bytes, bytes]) -> dict[str, Any]:
    """The values an endpoint call names in its header (none: the defaults); a 422 when they do not fit."""
    raw = headers.get(_HEADER)
    declared = deployment.config.get("class_parameters") or ()
    if raw is None and not declared:
        return {}
    try:
        given = loads(raw, deployment.name) if raw is not None else {}
        return resolve(check_declared(declared), given, deployment.name)
    except ParameterError as exc:
        raise ApiError(422, str(exc)) from None


def payload_parameters(deployment: Deployment, body: bytes) -> dict[str, Any]:
    """The values a pickled call names in its envelope (none: the defaults); a 422 when they do not fit."""
    try:
        return call_parameters(deployment, "pickle", body)
    except ParameterError as exc:
        raise ApiError(422, str(exc)) from None
