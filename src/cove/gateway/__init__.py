"""The gateway: control API, invocation routes, auth and metrics (ASGI)."""

from ._front_answers import answer_front_call, default_lines
from ._front_tables import FrontTables
from ._invoke import EXPRESS_ENDPOINT, SERVE_ENDPOINT
from ._invoke import PREFIX as ENDPOINT_PREFIX
from ._secretbox import SecretKeyError, check_cluster_key, load_key
from ._settings import GatewaySettings
from .app import create_app

__all__ = [
    "ENDPOINT_PREFIX",
    "EXPRESS_ENDPOINT",
    "SERVE_ENDPOINT",
    "FrontTables",
    "GatewaySettings",
    "SecretKeyError",
    "answer_front_call",
    "check_cluster_key",
    "create_app",
    "default_lines",
    "load_key",
]
