"""uvicorn's httptools protocol, sending each response's head together with its body.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start``, and its body in a second write. On the gateway's
small answers (a task id, a call's result) that is two system calls and two
packets per request, the largest single cost left on the put path. Here the
head waits for the first body write, or for the end of the current event loop
turn, whichever comes first, so nothing is held back longer than that.

While the process drains (``_drain``), each request's response closes its
connection: uvicorn then adds ``Connection: close`` itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ._drain import DRAINING


class _HeadHoldingTransport:
    """A transport that holds a write ending in a blank line (a response head) until the next write."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.writelines((held, data))  # one vectored write, no copy of the body
        elif data[-4:] == b"\r\n\r\n":
            self._held = bytes(data)
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._flush()  # an upgraded connection's protocol writes straight to the socket from now on
        self._transport.set_protocol(protocol)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GatewayHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` writing through ``_HeadHoldingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_HeadHoldingTransport(transport))  # type: ignore[arg-type]

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if DRAINING.active and self.cycle is not None:
            self.cycle.keep_alive = False
