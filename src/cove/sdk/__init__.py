"""The user-facing SDK: decorators, images and the HTTP client."""

from ._decorators import (
    Deployable,
    Endpoint,
    Function,
    Schedule,
    Stub,
    TaskQueue,
    endpoint,
    function,
    route_calls,
    schedule,
    task_queue,
)
from ._ephemeral import target_name as _target_name
from ._image import Image
from ._web import AsgiApp, WebApp, WsgiApp, asgi, wsgi

route_calls(_target_name)  # calls go where their app runs: see _ephemeral

__all__ = [
    "AsgiApp",
    "Deployable",
    "Endpoint",
    "Function",
    "Image",
    "Schedule",
    "Stub",
    "TaskQueue",
    "WebApp",
    "WsgiApp",
    "asgi",
    "endpoint",
    "function",
    "schedule",
    "task_queue",
    "wsgi",
]
