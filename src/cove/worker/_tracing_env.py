"""What tells a container's runner that the gateway traces: ``COVE_OTLP_ENDPOINT`` and the ``OTEL_*`` settings.

The runner makes a span per request only when ``COVE_OTLP_ENDPOINT`` is set
(it posts the spans to its gateway, not to that address: containers often
have no network). ``OTEL_*`` variables (a service name, resource
attributes, a sampler) reach the user's own OpenTelemetry setup as the
worker has them.
"""

from __future__ import annotations

import os

ENDPOINT_ENV = "COVE_OTLP_ENDPOINT"


def tracing_env() -> dict[str, str]:
    """The worker's tracing variables, for a container's environment; empty when tracing is off."""
    if not os.environ.get(ENDPOINT_ENV):
        return {}
    return {key: value for key, value in os.environ.items() if key == ENDPOINT_ENV or key.startswith("OTEL_")}
