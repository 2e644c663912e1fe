"""The errors Cove raises to its users, under one root: ``except cove.exceptions.CoveError`` catches them all.

Each error also keeps the built-in base it had before there was a root
(``ConfigError`` is a ``ValueError``, ``NotFound`` a ``LookupError``, a call's
``TimedOut`` a ``TimeoutError``...), so code that catches those goes on
working. Standard library only: containers import it before the user's code.
"""

from __future__ import annotations


class CoveError(Exception):
    """The root of every error Cove raises to its users."""


class ConfigError(CoveError, ValueError):
    """A decorator or deployment argument that cannot be used as given."""


class NotFound(CoveError, LookupError):
    """The named object does not exist in this workspace."""


class Conflict(CoveError, ValueError):
    """The change clashes with what is stored (e.g. a duplicate name)."""


class ResponseError(CoveError, RuntimeError):
    """An error the gateway answered, with its HTTP status, its type and its message."""

    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(f"{message} ({status} {type_})")
        self.status = status
        self.type = type_
        self.message = message


class RemoteError(CoveError, RuntimeError):
    """A remote failure whose exception could not be rebuilt here (its class is not importable, say)."""

    def __init__(self, type_: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{type_}: {message}")
        self.type = type_
        self.message = message
        self.remote_traceback = traceback


class TimedOut(CoveError, TimeoutError):
    """Waiting for a call's result or a sandbox process outlasted the timeout the caller gave."""
