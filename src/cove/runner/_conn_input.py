"""The read side of one connection of a web app's container, with a buffer of its own.

``asyncio.StreamReader`` cannot give bytes back, yet an exchange must notice
its caller hanging up while the app is still answering, which only a read
can tell. Reads here go through one buffer, so the read that watches for the
hang-up (:meth:`ConnInput.fill`) keeps whatever arrives for the next request
instead of losing it.
"""

from __future__ import annotations

import asyncio

_READ = 64 * 1024


class LineTooLong(Exception):
    """A request head longer than the limit."""


class ConnInput:
    """Buffered reads from one connection; ``EOFError`` when it ends before what was asked for."""

    __slots__ = ("_buffer", "_reader", "at_eof")

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._buffer = bytearray()
        self.at_eof = False

    async def fill(self) -> bool:
        """Read what the peer sent next into the buffer; False once the connection ended."""
        if self.at_eof:
            return False
        try:
            data = await self._reader.read(_READ)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.at_eof = True
            return False
        self._buffer += data
        return True

    async def read_until(self, separator: bytes, limit: int) -> bytes | None:
        """Bytes up to and including ``separator``; None when the connection ended before any byte came."""
        start = 0
        while True:
            found = self._buffer.find(separator, start)
            if found >= 0:
                end = found + len(separator)
                data = bytes(self._buffer[:end])
                del self._buffer[:end]
                return data
            if len(self._buffer) > limit:
                raise LineTooLong(f"more than {limit} bytes without {separator!r}")
            start = max(0, len(self._buffer) - len(separator) + 1)
            if not await self.fill():
                if not self._buffer:
                    return None
                raise EOFError("the connection ended inside a line")

    async def read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not await self.fill():
                raise EOFError(f"the connection ended {size - len(self._buffer)} bytes short")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def read_some(self, most: int) -> bytes:
        """Up to ``most`` bytes, at least one; ``EOFError`` at the end."""
        if not self._buffer and not await self.fill():
            raise EOFError("the connection ended")
        data = bytes(self._buffer[:most])
        del self._buffer[:most]
        return data
