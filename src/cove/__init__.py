"""Cove: decorate a Python function, get an autoscaling serverless endpoint.

Names are loaded on first use: this package is imported inside every
container before the user's code, so its import must cost next to nothing.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from . import env
    from ._wire.policies import QueueDepthAutoscaler, TaskPolicy
    from .exceptions import ConfigError, RemoteError
    from .sdk._app import App
    from .sdk._batched import batched
    from .sdk._calls import FunctionCall, Task
    from .sdk._classes import enter, exit, method, parameter
    from .sdk._decorators import (
        Deployable,
        Endpoint,
        Function,
        Schedule,
        TaskQueue,
        endpoint,
        function,
        schedule,
        task_queue,
    )
    from .sdk._decorators import Stub as Stub  # deprecated: Deployable
    from .sdk._image import Image
    from .sdk._model import Model
    from .sdk._sandbox import Sandbox
    from .sdk._volume import Volume
    from .sdk._web import AsgiApp, WebApp, WsgiApp, asgi, wsgi

__all__ = [
    "App",
    "AsgiApp",
    "ConfigError",
    "Deployable",
    "Endpoint",
    "Function",
    "FunctionCall",
    "Image",
    "Model",
    "QueueDepthAutoscaler",
    "RemoteError",
    "Sandbox",
    "Schedule",
    "Task",
    "TaskPolicy",
    "TaskQueue",
    "Volume",
    "WebApp",
    "WsgiApp",
    "asgi",
    "batched",
    "endpoint",
    "enter",
    "env",
    "exit",
    "function",
    "method",
    "parameter",
    "schedule",
    "task_queue",
    "wsgi",
]
__version__ = "0.1.0"

_WHERE = {
    "App": ".sdk._app",
    "ConfigError": ".exceptions",
    "QueueDepthAutoscaler": "._wire.policies",
    "TaskPolicy": "._wire.policies",
    "FunctionCall": ".sdk._calls",
    "RemoteError": ".exceptions",
    "Task": ".sdk._calls",
    "batched": ".sdk._batched",
    "enter": ".sdk._classes",
    "exit": ".sdk._classes",
    "method": ".sdk._classes",
    "parameter": ".sdk._classes",
    "function": ".sdk._decorators",
    "task_queue": ".sdk._decorators",
    "schedule": ".sdk._decorators",
    "Image": ".sdk._image",
    "Model": ".sdk._model",
    "Deployable": ".sdk._decorators",
    "Endpoint": ".sdk._decorators",
    "Function": ".sdk._decorators",
    "TaskQueue": ".sdk._decorators",
    "Schedule": ".sdk._decorators",
    "endpoint": ".sdk._decorators",
    "env": ".env",
    "Sandbox": ".sdk._sandbox",
    "Volume": ".sdk._volume",
    "AsgiApp": ".sdk._web",
    "WebApp": ".sdk._web",
    "WsgiApp": ".sdk._web",
    "asgi": ".sdk._web",
    "wsgi": ".sdk._web",
}
# Old names, still answered for one release with a DeprecationWarning that names the new one.
_RENAMED = {"Stub": "Deployable"}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        import warnings

        new = _RENAMED[name]
        warnings.warn(f"cove.{name} is deprecated; use cove.{new}", DeprecationWarning, stacklevel=2)
        return __getattr__(new)
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'cove' has no attribute {name!r}")
    module = importlib.import_module(where, __name__)
    value = module if name == "env" else getattr(module, name)
    globals()[name] = value
    return value
