"""The envelope around a pickled call payload: large values by reference, and a call's output.

A pickled argument tuple or result normally travels as the pickle itself.
Two things do not fit that: a value over ``BLOB_THRESHOLD`` bytes, which goes
to the gateway's blob store and travels as its sha256, and the lines a
function printed during the call, which ride back with its result so the
caller can show them without another round trip. Both are carried by an
envelope: ``MAGIC``, a 4-byte header length, a JSON header, then the pickle
(empty when the header names a blob). A pickle starts with ``0x80``, so the
two never mix up, and the gateway, which never unpickles, needs to know
neither. Stdlib only: the runner inside every container uses it.
"""

from __future__ import annotations

import json

from ..exceptions import CoveError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAGIC = b"COVE\x01"
BLOB_THRESHOLD = 1024 * 1024  # payloads over 1 MiB go through the blob store
MAX_LOG_CHARS = 64 * 1024  # a call's captured output beyond this is cut (the container log keeps it all)
CUT_NOTE = "\n[cove: this call printed more; the rest is in the container log]\n"
_MAX_HEADER = 4 * 1024 * 1024  # a sanity bound: output (JSON-escaped) plus a blob reference


class PayloadError(CoveError, ValueError):
    """An envelope that is not framed as promised."""


def wrap(header: dict[str, Any], body: bytes = b"") -> bytes:
    """An envelope holding ``header`` and the (possibly empty) pickle ``body``."""
    raw = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([MAGIC, len(raw).to_bytes(4, "big"), raw, body])


def unwrap(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The header (empty for a bare pickle) and the pickle bytes of a payload."""
    if not data.startswith(MAGIC):
        return {}, data
    start = len(MAGIC) + 4
    length = int.from_bytes(data[len(MAGIC) : start], "big")
    if length > _MAX_HEADER or start + length > len(data):
        raise PayloadError("payload envelope header length is out of range")
    try:
        header = json.loads(data[start : start + length])
    except ValueError as exc:
        raise PayloadError(f"payload envelope header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise PayloadError("payload envelope header is not an object")
    return header, data[start + length :]


def blob_ref(header: dict[str, Any]) -> str | None:
    """The sha256 of the blob an envelope points to, or None when the pickle is inline."""
    blob = header.get("blob")
    if blob is None:
        return None
    sha = blob.get("sha256") if isinstance(blob, dict) else None
    if not isinstance(sha, str) or len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
        raise PayloadError(f"payload envelope names an invalid blob {blob!r}")
    return sha
