"""One request from the gateway to a sandbox agent's socket, answered whole.

The invocation client (``_upstream``) is tuned for the endpoint hot path;
sandbox traffic is long polls and file bodies, so each request here gets its
own short-lived connection and a size cap instead.
"""

from __future__ import annotations

import asyncio

MAX_RESPONSE_BYTES = 256 * 1024 * 1024


class AgentError(ConnectionError):
    """The sandbox's agent could not be reached or answered nonsense."""


async def agent_request(
    address: str, method: str, path: str, body: bytes = b"", timeout: float = 60.0
) -> tuple[int, dict[str, str], bytes]:
    """Send one request to the agent at ``unix:PATH``; return status, lower-cased headers and body."""
    if not address.startswith("unix:"):
        raise AgentError(f"unsupported sandbox address {address!r}")
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(address[5:], limit=1 << 20)
            try:
                writer.write(
                    f"{method} {path} HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                headers = {}
                for line in lines[1:]:
                    key, sep, value = line.partition(":")
                    if sep:
                        headers[key.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if length > MAX_RESPONSE_BYTES:
                    raise AgentError(f"the sandbox answered {length} bytes, over the limit")
                payload = await reader.readexactly(length) if length else b""
                return status, headers, payload
            finally:
                writer.close()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as exc:
        raise AgentError(f"the sandbox did not answer: {exc or type(exc).__name__}") from exc
