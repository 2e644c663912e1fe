"""OpenTelemetry traces of the request path, on only when ``COVE_OTLP_ENDPOINT`` names a collector.

This module is what the rest of the gateway imports, and it imports no
OpenTelemetry: when tracing is off nothing here is loaded but the setting, no
span object is made, and the request path pays one ``is None`` test.
When it is on, :func:`start_tracing` loads ``_tracing_otel`` (the SDK and its
OTLP/HTTP exporter, the ``tracing`` extra) and the request id wrapper puts
the :class:`~cove.gateway._tracing_otel.Tracing` it returns in each
request's scope under :data:`SCOPE_KEY`, where ``_invoke`` finds it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._tracing_otel import Tracing

ENDPOINT_ENV = "COVE_OTLP_ENDPOINT"
SCOPE_KEY = "cove.tracing"
TRACES_PATH = "/v1/traces"


def otlp_endpoint_from_env() -> str | None:
    """The collector's OTLP/HTTP address (``COVE_OTLP_ENDPOINT``), or None: tracing is off."""
    text = os.environ.get(ENDPOINT_ENV, "").strip()
    if not text:
        return None
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"{ENDPOINT_ENV}={text!r} must be an http:// or https:// URL of an OTLP/HTTP collector")
    return text


def traces_url(endpoint: str) -> str:
    """Where spans are posted: the endpoint's ``/v1/traces``, as for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
    base = endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def start_tracing(endpoint: str | None) -> Tracing | None:
    """The gateway's tracer exporting to ``endpoint``; None (and nothing imported) when there is none."""
    if endpoint is None:
        return None
    try:
        from ._tracing_otel import Tracing
    except ImportError as exc:
        raise RuntimeError(
            f"{ENDPOINT_ENV} is set but OpenTelemetry is not installed ({exc}): install cove[tracing]"
        ) from None
    return Tracing(traces_url(endpoint), SCOPE_KEY)


def tracing_of(scope: Mapping[str, Any]) -> Tracing | None:
    """The request's tracer, or None when tracing is off."""
    return scope.get(SCOPE_KEY)
