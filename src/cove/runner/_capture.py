"""What a call prints, kept per call so it reaches the caller: live while it runs, the rest with the result.

``sys.stdout`` and ``sys.stderr`` are wrapped once, before the user's module
is imported (so loggers it sets up write through the wrapper too). Every
write still goes to the real stream, and so to the container's log; while a
call runs, the thread running it also appends to that call's buffer. Calls
on different threads (``concurrent_requests`` > 1) never see each other's
lines. Output of threads the call starts itself, of subprocesses and of C
code writing to the file descriptors directly is in the container log only.

A call that runs longer than ``LIVE_AFTER_SECONDS`` has its new output posted
to the gateway every ``LIVE_EVERY_SECONDS`` by one background thread, so a
caller waiting on ``.remote`` sees it as it is printed. What was not posted
(a short call's whole output, the last lines of a long one, anything the
gateway did not take) travels with the result. Printing never waits on the
gateway: only the poster and the call's end take a buffer's lock.

Only built-in modules and the stdlib-only ``cove._wire.payload`` are imported up
front: the runner stays cheap to start.
"""

from __future__ import annotations

import sys
from _thread import allocate_lock, get_ident, start_new_thread
from time import monotonic, sleep

from cove._wire.payload import CUT_NOTE, MAX_LOG_CHARS  # output not yet delivered beyond this stays in the log only
from cove.runner._request_ids import REQUEST_ID, tag, unended

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

LIVE_AFTER_SECONDS = 0.5
LIVE_EVERY_SECONDS = 0.25


class _Buffer:
    __slots__ = ("call_id", "cut", "lock", "parts", "size", "started")

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.started = monotonic()
        self.lock = allocate_lock()
        self.parts: list[str] = []
        self.size = 0
        self.cut = False

    def add(self, text: str) -> None:
        if self.size <= MAX_LOG_CHARS:
            self.parts.append(text)
            self.size += len(text)

    def take(self) -> str:
        """The output not yet delivered, removed from the buffer (hold ``lock``)."""
        parts, self.parts = self.parts, []
        self.size = 0
        joined = "".join(parts)
        if len(joined) > MAX_LOG_CHARS:
            joined = joined[:MAX_LOG_CHARS]
            if not self.cut:
                joined += CUT_NOTE
            self.cut = True
        return joined

    def give_back(self, text: str) -> None:
        """Undelivered text goes back in front, to travel with the result instead."""
        self.parts.insert(0, text)
        self.size += len(text)


_buffers: dict[int, _Buffer] = {}
_poster_started = False


class _Tee:
    """A text stream that also feeds the buffer of the call running on the writing thread."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        buffer = _buffers.get(get_ident())
        if buffer is not None:
            buffer.add(text)
        request_id = REQUEST_ID.get()
        if request_id is not None:  # the container log's line says which request printed it
            tagged = tag(self, text, request_id)
            if tagged:
                self._stream.write(tagged)
            return len(text)
        return self._stream.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def end_request(request_id: str) -> None:
    """A request ended: write out the lines it printed without a newline."""
    for tee, text in unended(request_id):
        tee._stream.write(text)


def install() -> None:
    """Wrap stdout and stderr (once)."""
    if not isinstance(sys.stdout, _Tee):
        sys.stdout = _Tee(sys.stdout)
    if not isinstance(sys.stderr, _Tee):
        sys.stderr = _Tee(sys.stderr)


def start(call_id: str = "") -> None:
    """Begin capturing this thread's output for one call (posted live when it has an id and runs long)."""
    global _poster_started
    _buffers[get_ident()] = _Buffer(call_id)
    if call_id and not _poster_started:
        from cove.runner._gateway_http import reachable

        if reachable():
            _poster_started = True
            start_new_thread(_post_forever, ())


def finish() -> str:
    """Stop capturing this thread's output; return what was not delivered live."""
    buffer = _buffers.pop(get_ident(), None)
    if buffer is None:
        return ""
    with buffer.lock:  # waits for a post in flight, so no line is both posted and returned
        return buffer.take()


def taken() -> str:
    """What this thread's call printed since the last look, leaving its capture on (a streamed call's output)."""
    buffer = _buffers.get(get_ident())
    if buffer is None or not buffer.parts:
        return ""
    with buffer.lock:
        return buffer.take()


def _post_forever() -> None:
    while True:
        sleep(LIVE_EVERY_SECONDS)
        now = monotonic()
        for buffer in list(_buffers.values()):
            if buffer.call_id and buffer.parts and now - buffer.started >= LIVE_AFTER_SECONDS:
                _post(buffer)


def _post(buffer: _Buffer) -> None:
    from cove.runner._gateway_http import GatewayError, request

    with buffer.lock:
        text = buffer.take()
        if not text:
            return
        try:
            request(
                "POST",
                f"/api/v1/calls/{buffer.call_id}/output",
                text.encode("utf-8", "replace"),
                content_type="text/plain; charset=utf-8",
                timeout=5,
            )
        except GatewayError:
            buffer.give_back(text)  # it travels with the result instead,
            buffer.call_id = ""  # and so does the rest of this call's output
