"""The gateway: control API, invocation routes, auth and metrics (ASGI)."""

from ._invoke import EXPRESS_ENDPOINT, SERVE_ENDPOINT
from ._invoke import PREFIX as ENDPOINT_PREFIX
from ._secretbox import SecretKeyError, check_cluster_key, load_key
from ._settings import GatewaySettings
from .app import create_app

__all__ = [
    "ENDPOINT_PREFIX",
    "EXPRESS_ENDPOINT",
    "SERVE_ENDPOINT",
    "GatewaySettings",
    "SecretKeyError",
    "check_cluster_key",
    "create_app",
    "load_key",
]
