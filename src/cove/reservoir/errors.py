"""Errors the reservoir reports to people.

Every error carries an HTTP status so the server can answer bad input with a
clear 4xx, and the CLI can print the same message and exit non-zero. The
reservoir stands alone (it imports nothing else of Cove), so these do not
derive from ``cove.exceptions``; their names say they are the reservoir's.
"""

from __future__ import annotations


class ReservoirError(Exception):
    """A problem the caller can fix; ``status`` is the HTTP status that describes it."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidPackage(ReservoirError):
    """A package file (wheel or sdist) or its metadata is malformed."""


class ReservoirConflict(ReservoirError):
    """The change clashes with what exists: files are immutable and never overwritten, a name has one index."""

    status = 409


class ReservoirNotFound(ReservoirError):
    """No file, package or index of that name."""

    status = 404


class BundleError(ReservoirError):
    """A bundle is malformed, tampered with, untrusted, or does not follow local state."""
