"""The container client's reading of an answer's head (``cove.gateway._upstream._parse_head``).

The runner's usual head takes a short path (two searches); anything that
changes how the body is read takes the full pass over the header lines. Both
must read the same status, length, keep-alive and stream type.
"""

from __future__ import annotations

import pytest

from cove.gateway._upstream_head import parse_head as _parse_head


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        # The runner's answer to a call: the short path.
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\nx-a: b\r\n\r\n",
            (200, 12, True, None),
        ),
        (b"HTTP/1.1 422 Unprocessable Entity\r\ncontent-length:7\r\n\r\n", (422, 7, True, None)),
        (b"HTTP/1.1 204 No Content\r\n\r\n", (204, 0, True, None)),
        # What changes how the body is read: the full pass.
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n", (200, 3, False, None)),
        (b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\n", (200, 3, True, None)),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n",
            (200, 0, True, "application/x-ndjson"),
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\n", (200, 5, True, None)),
    ],
)
def test_heads_read_alike_on_either_path(head: bytes, expected: tuple[int, int, bool, str | None]) -> None:
    assert _parse_head(head) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: three\r\n\r\n",
        b"SPDY/3 200 OK\r\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    ],
)
def test_a_malformed_head_is_a_value_error(head: bytes) -> None:
    with pytest.raises(ValueError):
        _parse_head(head)
