"""The gateway: control API, invocation routes, auth and metrics (ASGI)."""

from ._settings import GatewaySettings
from .app import create_app

__all__ = ["GatewaySettings", "create_app"]
