"""The id of the request a handler serves, on every line it prints and every log record it makes.

The gateway sends the request's id (``X-Request-Id``) with each endpoint
call; the runner keeps it in a context variable for as long as the handler
runs. A context variable, not a global: calls that run side by side
(``concurrent_requests`` > 1, on threads or on the event loop of async
handlers) each see their own id and never another's.

A line printed during a request leaves the container with the id in front
of it, between two separator bytes (``MARK`` id ``END``): the worker reading
the container's output takes it off and ships it as the line's
``request_id`` field. A request's lines are held until their newline and
written whole, so two requests' halves never meet on one line. Log records
get a ``request_id`` attribute too, for a handler's own formatter.

Only built-in modules are imported: the runner stays cheap to start.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from cove._wire.log_lines import END, MARK

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("cove_request_id", default=None)

_partial: dict[tuple[str, Any], str] = {}  # (request id, stream) -> its line printed so far, not yet ended


def tag(stream_key: Any, text: str, request_id: str) -> str:
    """What to write for ``text`` printed during ``request_id``: its ended lines, each with the id in front."""
    key = (request_id, stream_key)
    text = _partial.pop(key, "") + text
    if "\n" not in text:
        _partial[key] = text
        return ""
    lines, _, rest = text.rpartition("\n")
    if rest:
        _partial[key] = rest
    prefix = MARK + request_id + END
    return "".join(prefix + line + "\n" for line in lines.split("\n"))


def unended(request_id: str) -> list[tuple[Any, str]]:
    """The request's lines printed without a newline, taken (written with one when the request ends)."""
    keys = [key for key in _partial if key[0] == request_id]
    return [(key[1], MARK + request_id + END + _partial.pop(key) + "\n") for key in keys]


def install_log_records() -> None:
    """Every ``logging`` record made during a request carries ``request_id`` (None outside one)."""
    make = logging.getLogRecordFactory()

    def record(*args: object, **kwargs: object) -> logging.LogRecord:
        made = make(*args, **kwargs)
        made.request_id = REQUEST_ID.get()
        return made

    logging.setLogRecordFactory(record)
