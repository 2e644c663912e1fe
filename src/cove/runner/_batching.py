"""``@batched`` handlers: concurrent calls in one container, gathered into one call with lists.

A model's forward pass costs nearly the same for one input as for sixteen, so
calls that arrive together run together: each parameter receives the list of
that argument across the gathered calls, and the handler returns one result
per call, in order. A batch closes when it is full (``max_batch_size``) or
when its first call has waited ``wait_ms``. A result that is an exception
fails only its own call; an exception raised by the handler fails the batch.

Standard library only, like the rest of the runner; ``inspect`` is imported
only for a batched handler, which needs every argument by name.
"""

from __future__ import annotations

import threading
import time
import types

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class BatchSizeMismatch(Exception):
    """The handler returned something other than one result per gathered call."""


class Pending:
    """One call waiting for its batch to run."""

    __slots__ = ("arguments", "done", "error", "value")

    def __init__(self, arguments: dict[str, Any]) -> None:
        self.arguments = arguments
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def result(self) -> Any:
        """This call's own result, once its batch has run; its own exception is raised here."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


class Batcher:
    """Gathers calls from the server's threads and runs them, a batch at a time, on a thread of its own."""

    def __init__(
        self, target: Callable[..., Any], max_size: int, wait_ms: float, run_async: Callable[[Any], Any]
    ) -> None:
        import inspect

        self._signature = inspect.signature(target)
        self._target = target
        self._run_async = run_async
        self.max_size = max_size
        self._wait = wait_ms / 1000.0
        self._queue: list[Pending] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self.batches = 0

    def submit(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Pending:
        """Queue one call (its arguments as the handler would take them for one item); returns at once."""
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        pending = Pending(dict(bound.arguments))
        with self._ready:
            self._queue.append(pending)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="cove-batcher", daemon=True)
                self._thread.start()
            self._ready.notify()
        return pending

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                deadline = time.monotonic() + self._wait
                while len(self._queue) < self.max_size:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._ready.wait(left)
                batch, self._queue = self._queue[: self.max_size], self._queue[self.max_size :]
            self._run(batch)

    def _run(self, batch: list[Pending]) -> None:
        self.batches += 1
        columns = {name: [p.arguments[name] for p in batch] for name in self._signature.parameters}
        try:
            results = self._target(**columns)
            if type(results) is types.CoroutineType:
                results = self._run_async(results)
            if not isinstance(results, list | tuple) or len(results) != len(batch):
                got = f"{len(results)} results" if isinstance(results, list | tuple) else type(results).__name__
                raise BatchSizeMismatch(f"a @batched handler returns one result per call: {len(batch)} calls, {got}")
        except BaseException as exc:  # the whole batch fails alike
            for pending in batch:
                pending.error = exc
                pending.done.set()
            return
        for pending, value in zip(batch, results, strict=True):
            if isinstance(value, BaseException):
                pending.error = value
            else:
                pending.value = value
            pending.done.set()
