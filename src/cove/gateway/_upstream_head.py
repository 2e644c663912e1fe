"""What both kinds of the gateway's container connections share: their errors and the answer head's parser."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

MAX_HEADER_BYTES = 64 * 1024  # the longest answer head (and chunk size line) a container may send
# Seconds to open a connection to a container. One whose address no longer answers (its pod is gone, its
# listener stuck) would otherwise hold the call for the kernel's whole SYN retry time, about two minutes.
CONNECT_SECONDS = 5.0


class UpstreamError(ConnectionError):
    """The container closed or refused the connection before answering."""


class UpstreamUnreachable(UpstreamError):
    """The request never reached the container: it refused the connection (it is gone, or stopping)."""


class UpstreamClosedIdle(UpstreamError):
    """A kept-alive connection ended before any byte of the answer.

    Either the container closed it as idle (a container that is stopping does
    so: the request never reached its handler) or it died while running the
    request; only the container's state tells which.
    """


def parse_head(head: bytes) -> tuple[int, int, bool, str | None]:
    """Status, length, keep-alive, and the content type when the body is chunked (a stream), else None.

    The runner's answer to a call names its length and nothing that changes
    how the body is read (no ``Connection``, no ``Transfer-Encoding``): that
    one is read with two searches instead of a pass over every header line.
    """
    lowered = head.lower()
    if (
        head.startswith((b"HTTP/1.1 ", b"HTTP/1.0 "))
        and b"\r\ntransfer-encoding:" not in lowered
        and b"\r\nconnection:" not in lowered
    ):
        start = lowered.find(b"\r\ncontent-length:")
        if start >= 0 and lowered.find(b"\r\ncontent-length:", start + 1) < 0:
            start += 17
            return int(head[9:12]), int(head[start : lowered.find(b"\r\n", start)]), True, None
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"malformed status line {lines[0][:80]!r}")
    status = int(parts[1])
    length = 0
    keep_alive = True
    chunked = False
    media = b"application/octet-stream"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value.strip())
        elif lowered == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
        elif lowered == b"transfer-encoding":
            if value.strip().lower() != b"chunked":
                raise ValueError(f"unsupported transfer encoding {value.strip()[:40]!r}")
            chunked = True
        elif lowered == b"content-type":
            media = value.strip()
    return status, length, keep_alive, media.decode("latin-1") if chunked else None


async def connect(address: str, protocol: Callable[[], asyncio.BaseProtocol]) -> tuple[asyncio.BaseTransport, Any]:
    """Connect to a container's address (``unix:PATH`` or ``tcp:HOST:PORT``) within ``CONNECT_SECONDS``.

    ``UpstreamUnreachable`` when it cannot: refused, timed out, or an address of no kind it knows. The
    request never reached the container, so both clients may hand it elsewhere.
    """
    loop = asyncio.get_running_loop()
    if address.startswith("unix:"):
        opening = loop.create_unix_connection(protocol, address[5:])
    elif address.startswith("tcp:"):
        host, _, port = address[4:].rpartition(":")
        opening = loop.create_connection(protocol, host, int(port))
    else:
        raise UpstreamUnreachable(f"cannot connect to container: unsupported container address {address!r}")
    try:
        return await asyncio.wait_for(opening, CONNECT_SECONDS)
    except TimeoutError:
        raise UpstreamUnreachable(f"cannot connect to container: no connection within {CONNECT_SECONDS:g} s") from None
    except OSError as exc:
        raise UpstreamUnreachable(f"cannot connect to container: {exc}") from exc
