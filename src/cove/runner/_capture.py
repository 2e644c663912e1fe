"""What a call prints, kept per call so it can travel back to the caller with the result.

``sys.stdout`` and ``sys.stderr`` are wrapped once, before the user's module
is imported (so loggers it sets up write through the wrapper too). Every
write still goes to the real stream, and so to the container's log; while a
call runs, the thread running it also appends to that call's buffer. Calls
on different threads (``concurrent_requests`` > 1) never see each other's
lines. Output of threads the call starts itself, of subprocesses and of C
code writing to the file descriptors directly is in the container log only.

Only ``_thread`` (built in) is imported: the runner stays cheap to start.
"""

from __future__ import annotations

import sys
from _thread import get_ident

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

MAX_LOG_CHARS = 64 * 1024  # a call's output beyond this stays in the container log only
_CUT_NOTE = "\n[cove: this call printed more; the rest is in the container log]\n"


class _Buffer:
    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def add(self, text: str) -> None:
        if self.size <= MAX_LOG_CHARS:
            self.parts.append(text)
            self.size += len(text)

    def text(self) -> str:
        joined = "".join(self.parts)
        return joined if len(joined) <= MAX_LOG_CHARS else joined[:MAX_LOG_CHARS] + _CUT_NOTE


_buffers: dict[int, _Buffer] = {}


class _Tee:
    """A text stream that also feeds the buffer of the call running on the writing thread."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        buffer = _buffers.get(get_ident())
        if buffer is not None:
            buffer.add(text)
        return self._stream.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def install() -> None:
    """Wrap stdout and stderr (once)."""
    if not isinstance(sys.stdout, _Tee):
        sys.stdout = _Tee(sys.stdout)
    if not isinstance(sys.stderr, _Tee):
        sys.stderr = _Tee(sys.stderr)


def start() -> None:
    """Begin capturing this thread's output for one call."""
    _buffers[get_ident()] = _Buffer()


def finish() -> str:
    """Stop capturing this thread's output; return what the call printed."""
    buffer = _buffers.pop(get_ident(), None)
    return buffer.text() if buffer is not None and buffer.parts else ""
