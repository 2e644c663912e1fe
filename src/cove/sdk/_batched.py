"""``@cove.batched``: a handler that takes lists, called one item at a time.

Under ``@endpoint`` or ``@function``, closest to the ``def``::

    @cove.endpoint()
    @cove.batched(max_batch_size=16, wait_ms=10)
    def embed(texts: list[str]) -> list[list[float]]:
        return model.encode(texts)

    embed.remote("hello")          # one text in, one embedding out

Each container gathers the calls that arrive together (up to
``max_batch_size``, waiting at most ``wait_ms`` after the first) into one call
of the handler, whose every parameter then receives a list, and hands each
caller its own result. Return one result per call, in order; a result that is
an exception fails only its own call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .._wire.batching import MARK, check_batching
from ..exceptions import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def batched(*, max_batch_size: int, wait_ms: float) -> Callable[[F], F]:
    """Gather concurrent calls of the decorated handler into one call with lists (see the module's docs)."""
    size, wait = check_batching(max_batch_size, wait_ms)

    def mark(fn: F) -> F:
        if hasattr(fn, "raw_f"):
            raise ConfigError("@batched goes below @endpoint or @function, next to the def")
        if not callable(fn):
            raise ConfigError(f"@batched must decorate a function, not {type(fn).__name__}")
        setattr(fn, MARK, (size, wait))
        return fn

    return mark


def batching_defaults(fn: Callable[..., Any], settings: dict[str, Any], kind_defaults: Any) -> dict[str, Any]:
    """A batched handler's settings: unless given, a container takes a whole batch of calls at once.

    Without this a container would run one call at a time (``concurrent_requests``
    1) and the autoscaler would give every call its own container
    (``tasks_per_container`` 1), so no batch could ever form.
    """
    marked = getattr(fn, MARK, None)
    if marked is None:
        return settings
    size = marked[0]
    out = dict(settings)
    out.setdefault("concurrent_requests", max(size, kind_defaults.concurrent_requests))
    if "autoscaler" not in out:
        from .._wire.policies import QueueDepthAutoscaler

        out["autoscaler"] = QueueDepthAutoscaler(
            kind_defaults.min_containers,
            kind_defaults.max_containers,
            max(size, kind_defaults.tasks_per_container),
            kind_defaults.buffer_containers,
            kind_defaults.scale_down_window,
        )
    return out
