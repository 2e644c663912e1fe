"""Errors of the images part, kept apart so every module can raise them without import cycles."""

from __future__ import annotations


class BuildError(RuntimeError):
    """An image could not be built; the message says why in the user's terms (uv's own text included)."""


class ArchiveError(ValueError):
    """An uploaded code archive is unsafe or malformed; the message names the offending member."""
