"""A generator handler's items, written to the connection as the generator yields them.

The answer is chunked HTTP/1.1, one chunk per item, sent with a blocking
``sendall`` on the connection's thread: the generator is asked for its next
item only once the previous one is in the socket's buffer, so a caller that
reads slowly holds the generator back (nothing piles up here), and a caller
that went away makes the next write fail, which closes the generator (its
``finally`` runs, ``GeneratorExit`` is raised at its ``yield``).

The head waits for the first item: a generator that fails before yielding
answers the usual 500 error. The formats:

* ``raw`` (an endpoint's default): ``str`` items as UTF-8, ``bytes`` as they
  are, anything else as a JSON line. The first item sets the content type:
  ``text/plain; charset=utf-8``, ``application/octet-stream`` or
  ``application/x-ndjson``.
* ``ndjson`` (``Accept: application/x-ndjson``): every item a JSON line,
  strings included (``bytes`` decoded as UTF-8), so a client gets each item
  back as it was.
* ``sse`` (``Accept: text/event-stream``): each item one ``data:`` event, its
  text as in ``raw`` (``bytes`` decoded as UTF-8); a failure is an
  ``event: error`` whose data is the usual error object.
* ``records`` (``f.remote_gen``): pickled items in ``cove._wire.stream``
  records, with what the call printed and its failure, rebuilt as the
  exception it was.

A failure after the first item of ``raw`` or ``ndjson`` has no place in the
body: the connection is closed without the last chunk, so the client sees an
incomplete body, and the traceback is in the container's log.
"""

from __future__ import annotations

import sys
import types

from cove._wire import stream as wire
from cove.runner._http import response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

_DONE = object()
_LAST_CHUNK = b"0\r\n\r\n"
_TEXT = b"text/plain; charset=utf-8"
_BYTES = b"application/octet-stream"
_NDJSON = wire.NDJSON.encode()


def is_generator(value: Any) -> bool:
    """Whether a handler's result is one to stream (a generator, or an async generator)."""
    kind = type(value)
    return kind is types.GeneratorType or kind is types.AsyncGeneratorType


def stream_format(accept: bytes) -> str:
    """The endpoint stream format a request's ``Accept`` asks for."""
    if wire.SSE.encode() in accept:
        return "sse"
    if _NDJSON in accept:
        return "ndjson"
    return "raw"


def sync_items(value: Any, run: Callable[[Any], Any]) -> Iterator[Any]:
    """A generator's items as a plain iterator; an async generator's are awaited with ``run``.

    Closing the iterator closes the generator, on the loop it runs on.
    """
    if type(value) is types.GeneratorType:
        return value
    return _awaited(value, run)


async def _next(agen: Any) -> Any:
    try:
        return await agen.__anext__()
    except StopAsyncIteration:
        return _DONE


def _awaited(agen: Any, run: Callable[[Any], Any]) -> Iterator[Any]:
    try:
        while True:
            item = run(_next(agen))
            if item is _DONE:
                return
            yield item
    finally:
        run(agen.aclose())


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _head(content_type: bytes, keep_alive: bool) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n%s\r\n" % (
        content_type,
        b"" if keep_alive else b"Connection: close\r\n",
    )


def _text(item: Any, encode: Callable[[Any], str]) -> str:
    if type(item) is str:
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item).decode("utf-8", "replace")
    return encode(item)


class ItemStream:
    """A call whose handler returned a generator: its items, written as they come by :meth:`write`.

    ``fail`` turns an exception raised by the generator into the JSON error
    payload (``{"error": {...}}``) and logs it; ``pickle`` encodes a
    ``records`` item, ``output`` returns what the call printed since it was
    last asked, ``done`` runs once the stream is over; ``error``, when set,
    is a failure known before any item (the ``records`` format reports every
    failure in its body).
    """

    __slots__ = ("_items", "call_id", "done", "encode", "error", "fail", "fmt", "output", "pickle", "sent")

    def __init__(
        self,
        items: Iterator[Any],
        fmt: str,
        call_id: str | None,
        *,
        encode: Callable[[Any], str],
        fail: Callable[[BaseException], bytes],
        pickle: Callable[[Any], bytes] | None = None,
        output: Callable[[], str] | None = None,
        done: Callable[[], Any] | None = None,
        error: bytes | None = None,
    ) -> None:
        self._items = items
        self.fmt = fmt
        self.call_id = call_id
        self.encode = encode
        self.fail = fail
        self.pickle = pickle
        self.output = output
        self.done = done
        self.error = error
        self.sent = 0

    def write(self, send: Callable[[bytes], Any], keep_alive: bool) -> bool:
        """Answer the request with the items; return whether the connection may serve another request."""
        try:
            return self._write(send, keep_alive)
        finally:
            self.close()

    def close(self) -> None:
        """Close the generator (a no-op once it is finished); its ``finally`` runs now."""
        close = getattr(self._items, "close", None)
        try:
            if close is not None:
                close()
        except BaseException as exc:  # e.g. a generator that yields again after GeneratorExit
            print(f"cove: call {self.call_id or '-'}: closing the generator failed: {exc!r}", file=sys.stderr)
        finally:
            if self.done is not None:
                self.done()

    def _write(self, send: Callable[[bytes], Any], keep_alive: bool) -> bool:
        if self.error is not None:
            send(_head(wire.RECORDS.encode(), keep_alive) + _chunk(wire.record(wire.ERROR, self.error)) + _LAST_CHUNK)
            return keep_alive
        try:
            first = next(self._items, _DONE)
            data = b"" if first is _DONE else self._encoded(first)
        except BaseException as exc:  # the generator failed before its first item
            if self.fmt == "records":
                body = _chunk(self._output_record() + wire.record(wire.ERROR, self.fail(exc)))
                send(_head(wire.RECORDS.encode(), keep_alive) + body + _LAST_CHUNK)
                return keep_alive
            send(response(500, self.fail(exc), keep_alive))
            return keep_alive
        head = _head(self._content_type(first), keep_alive)
        if first is _DONE:
            send(head + self._ending())
            return keep_alive
        send(head + (_chunk(data) if data else b""))
        self.sent = 1
        return self._rest(send, keep_alive)

    def _rest(self, send: Callable[[bytes], Any], keep_alive: bool) -> bool:
        items = self._items
        while True:
            try:
                item = next(items, _DONE)
                if item is _DONE:
                    break
                data = self._encoded(item)
            except BaseException as exc:  # the generator (or an item's encoding) failed mid-stream
                return self._failed_midway(send, exc, keep_alive)
            if data:
                try:
                    send(_chunk(data))
                except OSError:
                    print(
                        f"cove: call {self.call_id or '-'}: the caller went away after {self.sent} items; "
                        "the generator is closed",
                        file=sys.stderr,
                    )
                    raise
            self.sent += 1
        send(self._ending())
        return keep_alive

    def _failed_midway(self, send: Callable[[bytes], Any], exc: BaseException, keep_alive: bool) -> bool:
        error = self.fail(exc)
        if self.fmt == "records":
            send(_chunk(self._output_record() + wire.record(wire.ERROR, error)) + _LAST_CHUNK)
            return keep_alive
        if self.fmt == "sse":
            send(_chunk(b"event: error\n" + _sse_data(error.decode("utf-8"))) + _LAST_CHUNK)
            return keep_alive
        return False  # no last chunk: the caller sees the body end before its end

    def _ending(self) -> bytes:
        if self.fmt == "records":
            return _chunk(self._output_record() + wire.record(wire.END)) + _LAST_CHUNK
        return _LAST_CHUNK

    def _output_record(self) -> bytes:
        """What the call printed since the last record, as an ``OUTPUT`` record (none when nothing)."""
        text = self.output() if self.output is not None else ""
        return wire.record(wire.OUTPUT, text.encode("utf-8", "replace")) if text else b""

    def _content_type(self, first: Any) -> bytes:
        fmt = self.fmt
        if fmt == "records":
            return wire.RECORDS.encode()
        if fmt == "sse":
            return wire.SSE.encode()
        if fmt == "raw" and first is not _DONE:
            if type(first) is str:
                return _TEXT
            if isinstance(first, (bytes, bytearray, memoryview)):
                return _BYTES
        return _NDJSON

    def _encoded(self, item: Any) -> bytes:
        """An item's bytes in this stream's format (raises what encoding it raises)."""
        fmt = self.fmt
        if fmt == "raw":
            if type(item) is str:
                return item.encode("utf-8")
            if isinstance(item, (bytes, bytearray, memoryview)):
                return bytes(item)
            return self.encode(item).encode("utf-8") + b"\n"
        if fmt == "ndjson":
            if isinstance(item, (bytes, bytearray, memoryview)):
                item = bytes(item).decode("utf-8", "replace")
            return self.encode(item).encode("utf-8") + b"\n"
        if fmt == "sse":
            return _sse_data(_text(item, self.encode))
        assert self.pickle is not None
        data = wire.record(wire.ITEM, self.pickle(item))
        return self._output_record() + data  # what the call printed before the item shows first

    def __repr__(self) -> str:
        return f"<ItemStream {self.fmt} of call {self.call_id or '-'}>"


def _sse_data(text: str) -> bytes:
    """One server-sent event: a ``data:`` line per line of ``text``."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "".join([f"data: {line}\n" for line in lines]).encode("utf-8") + b"\n"


def failure_stream(error: dict[str, Any], call_id: str | None) -> ItemStream:
    """A ``records`` answer holding only a failure found before the generator existed."""
    import json

    return ItemStream(
        iter(()),
        "records",
        call_id,
        encode=json.dumps,
        fail=lambda exc: b"",
        error=json.dumps({"error": error}).encode(),
    )
