"""The user-facing SDK: decorators, images and the HTTP client."""

from ._decorators import Stub, endpoint, function, schedule, task_queue
from ._image import Image

__all__ = ["Image", "Stub", "endpoint", "function", "schedule", "task_queue"]
