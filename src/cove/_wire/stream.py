"""The records of a streamed function call (``f.remote_gen(...)``), and the content types of streams.

A generator function's items travel pickled, one record each, as the
generator yields them: ``[1-byte kind][4-byte big-endian length][payload]``.
``OUTPUT`` carries what the call printed since the previous record (shown on
the caller's stderr), ``ERROR`` the failure as JSON (the same error object a
failed ``.remote`` answers, with the pickled exception in base64), ``END``
the clean end. A stream that stops without ``ERROR`` or ``END`` broke off
(the container died, the connection dropped). The gateway relays the records
without reading them, as it never unpickles. Stdlib only: the runner inside
every container uses it.
"""

from __future__ import annotations

from ..exceptions import CoveError

RECORDS = "application/x-cove-stream"  # a function's items, pickled, in records
SSE = "text/event-stream"  # an endpoint's items as server-sent events, on request
NDJSON = "application/x-ndjson"  # an endpoint's items as JSON lines

ITEM = 1
OUTPUT = 2
ERROR = 3
END = 4
RECORD_KINDS = frozenset({ITEM, OUTPUT, ERROR, END})
HEADER = 5
MAX_RECORD = 1 << 31  # a sanity bound on one record's payload (an item is one pickle)


class StreamError(CoveError, ValueError):
    """Bytes that are not records as framed here."""


def record(kind: int, payload: bytes = b"") -> bytes:
    """One record."""
    return bytes((kind,)) + len(payload).to_bytes(4, "big") + payload


class Records:
    """Cuts a byte stream, fed in pieces of any size, into ``(kind, payload)`` records."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The records completed by ``data``; a partial one waits for the next piece."""
        buffer = self._buffer
        buffer += data
        out: list[tuple[int, bytes]] = []
        start = 0
        while len(buffer) - start >= HEADER:
            kind = buffer[start]
            length = int.from_bytes(buffer[start + 1 : start + HEADER], "big")
            if kind not in RECORD_KINDS or length > MAX_RECORD:
                raise StreamError(f"not a stream record (kind {kind}, length {length})")
            end = start + HEADER + length
            if len(buffer) < end:
                break
            out.append((kind, bytes(buffer[start + HEADER : end])))
            start = end
        del buffer[:start]
        return out

    @property
    def pending(self) -> int:
        """Bytes of a record not yet complete."""
        return len(self._buffer)
