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
    from ._config import ConfigError, QueueDepthAutoscaler, TaskPolicy
    from .sdk import Image, Stub, endpoint, function, schedule, task_queue
    from .sdk._calls import FunctionCall, RemoteError, Task
    from .sdk._sandbox import Sandbox
    from .sdk._volume import Volume

__all__ = [
    "ConfigError",
    "FunctionCall",
    "Image",
    "QueueDepthAutoscaler",
    "RemoteError",
    "Sandbox",
    "Stub",
    "Task",
    "TaskPolicy",
    "Volume",
    "endpoint",
    "env",
    "function",
    "schedule",
    "task_queue",
]
__version__ = "0.1.0"

_WHERE = {
    "ConfigError": "._config",
    "QueueDepthAutoscaler": "._config",
    "TaskPolicy": "._config",
    "FunctionCall": ".sdk._calls",
    "RemoteError": ".sdk._calls",
    "Task": ".sdk._calls",
    "function": ".sdk._decorators",
    "task_queue": ".sdk._decorators",
    "schedule": ".sdk._decorators",
    "Image": ".sdk._image",
    "Stub": ".sdk._decorators",
    "endpoint": ".sdk._decorators",
    "env": ".env",
    "Sandbox": ".sdk._sandbox",
    "Volume": ".sdk._volume",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'cove' has no attribute {name!r}")
    module = importlib.import_module(where, __name__)
    value = module if name == "env" else getattr(module, name)
    globals()[name] = value
    return value
