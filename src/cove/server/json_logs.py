"""Structured JSON logs, one object a line, for every long-running Cove process.

``cove server`` (gateway and scheduler) and ``cove worker`` (also the local
worker a server starts) install the same formatter, so a line can be searched
by the fields its call site attached: ``log.info(..., extra={"container_id": cid})``
puts ``"container_id"`` in the line, whichever process wrote it.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from . import poll_noise

# Every attribute a LogRecord has on its own, plus those ``Formatter.format`` adds; anything else came from ``extra``.
# uvicorn's ``color_message`` is left out too: it is its message again, with terminal colour codes.
_NOT_EXTRA: frozenset[str] = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the exception if any, and every ``extra`` field.

    An ``extra`` field never replaces one of the line's own keys (``ts``, ``level``, ...): a call site that
    happens to pass ``extra={"level": ...}`` must not make the line lie about its level. Such a field is kept
    as ``extra_<name>``. Values JSON cannot hold are written as their ``str()``.
    """

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key in _NOT_EXTRA or key.startswith("_"):
                continue
            data[f"extra_{key}" if key in data else key] = value
        return json.dumps(data, default=str)


def setup(level: str | int = logging.INFO) -> None:
    """Send JSON lines to stderr, replacing any handler the root logger had (``cove server`` and ``cove worker``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    poll_noise.install()  # a worker's routine heartbeats and order polls are not worth a line each
