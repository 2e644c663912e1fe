"""Errors the reservoir reports to people.

Every error carries an HTTP status so the server can answer bad input with a
clear 4xx, and the CLI can print the same message and exit non-zero.
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


class Conflict(ReservoirError):
    """The file already exists; files are immutable, so it is never overwritten."""

    status = 409


class NotFound(ReservoirError):
    status = 404


class BundleError(ReservoirError):
    """A bundle is malformed, tampered with, untrusted, or does not follow local state."""
