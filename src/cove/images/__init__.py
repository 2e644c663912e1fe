"""Images: image spec → content hash → an environment built once with uv, cached and shared.

Also the server side of code uploads: checking and unpacking code archives.
"""

from __future__ import annotations

from ._builder import ImageBuilder
from ._code import extract_code, validate_archive
from ._errors import ArchiveError, BuildError
from ._gc import find_image, garbage_collect, list_images, remove_image
from ._layout import MARKER, BuiltImage

__all__ = [
    "MARKER",
    "ArchiveError",
    "BuildError",
    "BuiltImage",
    "ImageBuilder",
    "extract_code",
    "find_image",
    "garbage_collect",
    "list_images",
    "remove_image",
    "validate_archive",
]
