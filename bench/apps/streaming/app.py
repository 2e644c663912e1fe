"""The streaming benchmark's endpoints: the same items, streamed as they are made or returned at the end."""

import time
from collections.abc import Iterator

from cove import endpoint


def _items(count: int, gap_ms: float) -> Iterator[dict[str, int]]:
    for i in range(count):
        if i:
            time.sleep(gap_ms / 1000)  # the work that makes the next item (a token, a frame, a row)
        yield {"i": i}


@endpoint
def streamed(count: int = 20, gap_ms: float = 10.0) -> Iterator[dict[str, int]]:
    yield from _items(count, gap_ms)


@endpoint
def collected(count: int = 20, gap_ms: float = 10.0) -> list[dict[str, int]]:
    return list(_items(count, gap_ms))
