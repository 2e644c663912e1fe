"""``@batched``: how a handler marks itself, and the values its two settings accept.

The SDK's ``cove.batched`` sets the mark on the user's function; the runner,
which imports the same function inside the container, reads it and gathers
calls (``cove.runner._batching``). The mark travels with the code, so the
deployment config needs no field of its own for it.
"""

from __future__ import annotations

from .ranges import BATCH_SIZE, BATCH_WAIT_MS

MARK = "__cove_batched__"
"""The attribute on a batched handler: ``(max_batch_size, wait_ms)``."""


def check_batching(max_batch_size: object, wait_ms: object) -> tuple[int, float]:
    """Both settings, range-checked (``ConfigError`` naming the one out of range)."""
    return BATCH_SIZE.check("max_batch_size", max_batch_size), BATCH_WAIT_MS.check("wait_ms", wait_ms)
