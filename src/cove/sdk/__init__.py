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
    schedule,
    task_queue,
)
from ._image import Image

__all__ = [
    "Deployable",
    "Endpoint",
    "Function",
    "Image",
    "Schedule",
    "Stub",
    "TaskQueue",
    "endpoint",
    "function",
    "schedule",
    "task_queue",
]
