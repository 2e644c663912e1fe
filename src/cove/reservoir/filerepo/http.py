"""HTTP pieces the one-file-per-package repositories share: plain answers and authenticated uploads.

An upload is a ``PUT`` of the file's bytes with HTTP basic auth, an upload
token as the password (what ``curl -T`` and R's or dnf's tooling around it
send). The body is streamed into the store's scratch space with the size
limit enforced as it arrives, then handed to the kind's own ingest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .. import tokens
from ..store import Store, new_temp_path

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
SendFile = Callable[..., Awaitable[None]]
Count = Callable[[str, str, str, str, Scope, int], None]

INDEX_CACHE = b"max-age=0, must-revalidate"
FILE_CACHE = b"public, max-age=31536000, immutable"


async def send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, head: bool = False) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def text(send_: Send, status: int, message: str, *, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), *(extra or [])]
    await send(send_, status, headers, (message + "\n").encode())


async def stored(send_: Send, name: str, status: str, reason: str | None, extra: dict[str, Any] | None = None) -> None:
    """The ``201 Created`` answer to an upload: the file name and whether the policy quarantined it."""
    body = json.dumps({"stored": name, "status": status, "reason": reason, **(extra or {})}).encode() + b"\n"
    await send(send_, 201, [(b"content-type", b"application/json")], body)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope["headers"]}


async def authorize(store: Store, scope: Scope, send_: Send) -> str | None:
    """The upload token's owner, or None after answering 401 (no credentials) or 403 (a bad token)."""
    token = tokens.password_from_basic(_headers(scope).get(b"authorization"))
    if token is None:
        extra = [(b"www-authenticate", b'Basic realm="cove-reservoir"')]
        await text(send_, 401, "authentication required: an upload token as the password", extra=extra)
        return None
    who = await asyncio.to_thread(tokens.check, store, token)
    if who is None:
        await text(send_, 403, "invalid or revoked upload token")
    return who


async def too_large(scope: Scope, send_: Send, limit: int) -> bool:
    """Answer 413 when the declared ``Content-Length`` is over ``limit`` (before reading a byte)."""
    length = _headers(scope).get(b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        await text(send_, 413, f"upload is larger than the limit of {limit} bytes")
        return True
    return False


async def receive_body(store: Store, receive: Receive, send_: Send, limit: int, suffix: str) -> Path | None:
    """Stream the request body into a scratch file; None (the answer sent, the file gone) when the client
    went away or sent more than ``limit`` bytes. The caller removes the file it gets."""
    temp = new_temp_path(store, suffix)
    done = False
    try:
        size = 0
        with temp.open("wb") as fh:
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    await text(send_, 413, f"upload is larger than the limit of {limit} bytes")
                    return None
                fh.write(chunk)
                more = bool(message.get("more_body"))
        done = True
        return temp
    finally:
        if not done:
            temp.unlink(missing_ok=True)
