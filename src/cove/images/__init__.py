"""Images: image spec → content hash → an environment built once with uv, cached and shared.

Also the server side of code uploads: checking and unpacking code archives.
"""

from __future__ import annotations

from ._builder import ImageBuilder
from ._code import extract_code, validate_archive
from ._errors import ArchiveError, BuildError
from ._gc import find_image, garbage_collect, list_images, remove_image
from ._inventory import GcReport, collect, layer_sizes, stored_images, tree_size
from ._layout import MARKER, BuiltImage, image_dir, image_roots, read_manifest, roots
from ._packages import PACKAGES_FILE, packages_of

__all__ = [
    "MARKER",
    "PACKAGES_FILE",
    "ArchiveError",
    "BuildError",
    "BuiltImage",
    "GcReport",
    "ImageBuilder",
    "collect",
    "extract_code",
    "find_image",
    "garbage_collect",
    "image_dir",
    "image_roots",
    "layer_sizes",
    "list_images",
    "packages_of",
    "read_manifest",
    "remove_image",
    "roots",
    "stored_images",
    "tree_size",
    "validate_archive",
]
