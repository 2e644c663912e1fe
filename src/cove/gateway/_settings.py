"""The gateway's settings, one typed object."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cove._host.home import Home
from cove._host.python_envs import roots_from_env
from cove._wire.limits import MAX_BLOB_BYTES, MAX_BODY_BYTES, MAX_CODE_BYTES
from cove._wire.server_defaults import default_gateway_url

from ..scheduler import allowance_from_env
from ..store import events_retention_from_env
from ._tracing import otlp_endpoint_from_env

APP_HEARTBEAT_TIMEOUT_ENV = "COVE_APP_HEARTBEAT_TIMEOUT"
DEFAULT_APP_HEARTBEAT_TIMEOUT = 30.0


def heartbeat_timeout_from_env() -> float:
    """Seconds without a heartbeat after which a script's ephemeral app is stopped (``COVE_APP_HEARTBEAT_TIMEOUT``)."""
    import os

    text = os.environ.get(APP_HEARTBEAT_TIMEOUT_ENV, "")
    try:
        value = float(text) if text else DEFAULT_APP_HEARTBEAT_TIMEOUT
    except ValueError:
        raise ValueError(f"{APP_HEARTBEAT_TIMEOUT_ENV}={text!r} is not a number of seconds") from None
    if not 1 <= value <= 86400:
        raise ValueError(f"{APP_HEARTBEAT_TIMEOUT_ENV}={text!r} must be from 1 to 86400 seconds")
    return value


METRICS_PUBLIC_ENV = "COVE_METRICS_PUBLIC"


def metrics_public_from_env() -> bool:
    """Whether ``/metrics`` answers without a token (``COVE_METRICS_PUBLIC=1``; default: it needs one).

    Series name deployments and workspaces, so opening them is the operator's explicit choice.
    """
    import os

    text = os.environ.get(METRICS_PUBLIC_ENV, "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{METRICS_PUBLIC_ENV}={text!r} must be 1 or 0")


def access_log_from_env() -> bool:
    """Whether the gateway logs one line per request (``COVE_ACCESS_LOG=1``); off by default: it is a line per call."""
    import os

    return os.environ.get("COVE_ACCESS_LOG", "").strip().lower() in ("1", "true", "yes", "on")


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    home: Home
    database_url: str
    public_url: str = default_gateway_url()
    max_body_bytes: int = MAX_BODY_BYTES
    max_code_bytes: int = MAX_CODE_BYTES
    max_blob_bytes: int = MAX_BLOB_BYTES
    index_url: str | None = None
    default_workspace: str = "default"
    token_cache_seconds: float = 5.0
    # Networks and host names callback_url may reach besides public addresses (``--callback-allow``).
    callback_allow: tuple[str, ...] = dataclasses.field(default_factory=allowance_from_env)
    # Folders under which images may name an existing environment (python_env); none: such images are refused.
    python_env_roots: tuple[Path, ...] = dataclasses.field(default_factory=roots_from_env)
    # A script's ephemeral app whose client sent no heartbeat for this long is stopped (the client died).
    app_heartbeat_timeout: float = dataclasses.field(default_factory=heartbeat_timeout_from_env)
    # How long the event log keeps the scheduler's decisions (``COVE_EVENTS_RETENTION``, seconds).
    events_retention: float = dataclasses.field(default_factory=events_retention_from_env)
    # ``/metrics`` answers every series to anyone, without a token (``COVE_METRICS_PUBLIC=1``).
    metrics_public: bool = dataclasses.field(default_factory=metrics_public_from_env)
    # One info line per HTTP request with its request id, status and time (``COVE_ACCESS_LOG=1``; default off).
    access_log: bool = dataclasses.field(default_factory=access_log_from_env)
    # The OTLP/HTTP collector the request path's spans go to (``COVE_OTLP_ENDPOINT``); None: no tracing.
    otlp_endpoint: str | None = dataclasses.field(default_factory=otlp_endpoint_from_env)
