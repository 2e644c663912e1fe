"""A tiny framing for batches of opaque payloads: a JSON header, then the bytes.

Calls of ``@function``s carry pickled arguments and results. The gateway
routes and stores them but must never unpickle them (that would run the
user's code in the gateway), so a batch travels as
``[4-byte header length][JSON header with a "size" per item][payloads...]``
and each side slices the payloads out by size. Stdlib only: the runner
inside every container uses it too.
"""

from __future__ import annotations

import json

from ..exceptions import CoveError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_HEADER = 16 * 1024 * 1024


class FrameError(CoveError, ValueError):
    """A batch that is not framed as promised."""


def pack(header: dict[str, Any], items: list[dict[str, Any]], payloads: list[bytes], key: str = "items") -> bytes:
    """Frame ``payloads``; each item of ``items`` gets the size of its payload."""
    if len(items) != len(payloads):
        raise FrameError("one payload per item is required")
    for item, payload in zip(items, payloads, strict=True):
        item["size"] = len(payload)
    raw = json.dumps({**header, key: items}, separators=(",", ":")).encode()
    return b"".join([len(raw).to_bytes(4, "big"), raw, *payloads])


def unpack(data: bytes, key: str = "items") -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """Return the header and (item, payload) pairs; raise ``FrameError`` on anything malformed."""
    if len(data) < 4:
        raise FrameError("batch is shorter than its header length")
    length = int.from_bytes(data[:4], "big")
    if length > MAX_HEADER or 4 + length > len(data):
        raise FrameError("batch header length is out of range")
    try:
        header = json.loads(data[4 : 4 + length])
    except ValueError as exc:
        raise FrameError(f"batch header is not JSON: {exc}") from None
    items = header.get(key) if isinstance(header, dict) else None
    if not isinstance(items, list):
        raise FrameError(f"batch header has no {key!r} list")
    offset = 4 + length
    out = []
    for item in items:
        size = item.get("size") if isinstance(item, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(data):
            raise FrameError("batch item has a missing or impossible size")
        out.append((item, data[offset : offset + size]))
        offset += size
    if offset != len(data):
        raise FrameError("batch has bytes after its last item")
    return header, out
