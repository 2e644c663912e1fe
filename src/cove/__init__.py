"""Cove: decorate a Python function, get an autoscaling serverless endpoint.

This module stays stdlib-only at import time: it is imported inside every
container, where only the image's packages exist.
"""

from . import env
from ._config import ConfigError, QueueDepthAutoscaler
from .sdk import Image, Stub, endpoint

__all__ = ["ConfigError", "Image", "QueueDepthAutoscaler", "Stub", "endpoint", "env"]
__version__ = "0.1.0"
