"""``cove.App``: a name for the functions deployed together.

::

    app = cove.App("vision")

    @app.function(cpu=2)
    def preprocess_image(url: str) -> list[float]: ...

    @app.endpoint()
    def classify(urls: list[str]) -> list[dict]:
        return [...preprocess_image.map(urls)...]

``app.function``, ``app.endpoint``, ``app.task_queue`` and ``app.schedule`` are the
module-level decorators with ``app="vision"`` given; ``app=`` on a decorator
does the same. Without either, a function's app is the folder its file is in.
``cove deploy FILE.py`` deploys every function of the file into its app; a name
whose live version belongs to another app is refused unless ``--replace``.
"""

from __future__ import annotations

from .._wire.names import check_name
from ..exceptions import ConfigError
from . import _decorators

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any, ParamSpec, Protocol, TypeVar, Unpack, overload

    from ._decorators import (
        ComputeOptions,
        Endpoint,
        Function,
        InputsOptions,
        TaskQueue,
        _EndpointDecorator,
        _EndpointInputsDecorator,
        _FunctionDecorator,
        _FunctionInputsDecorator,
        _ScheduleDecorator,
        _TaskQueueDecorator,
        _TaskQueueInputsDecorator,
    )

    P = ParamSpec("P")
    R = TypeVar("R")

    # What ``app.endpoint`` and the others are to a type checker: the module-level decorators' overloads.
    class _Endpoints(Protocol):
        @overload
        def __call__(
            self, f: Callable[P, Coroutine[Any, Any, R]], /, **options: Unpack[ComputeOptions]
        ) -> Endpoint[P, R, Coroutine[Any, Any, R]]: ...
        @overload
        def __call__(self, f: Callable[P, R], /, **options: Unpack[ComputeOptions]) -> Endpoint[P, R]: ...
        @overload
        def __call__(self, **options: Unpack[InputsOptions]) -> _EndpointInputsDecorator: ...
        @overload
        def __call__(self, **options: Unpack[ComputeOptions]) -> _EndpointDecorator: ...

    class _Functions(Protocol):
        @overload
        def __call__(
            self, f: Callable[P, Coroutine[Any, Any, R]], /, **options: Unpack[ComputeOptions]
        ) -> Function[P, R, Coroutine[Any, Any, R]]: ...
        @overload
        def __call__(self, f: Callable[P, R], /, **options: Unpack[ComputeOptions]) -> Function[P, R]: ...
        @overload
        def __call__(self, **options: Unpack[InputsOptions]) -> _FunctionInputsDecorator: ...
        @overload
        def __call__(self, **options: Unpack[ComputeOptions]) -> _FunctionDecorator: ...

    class _TaskQueues(Protocol):
        @overload
        def __call__(
            self, f: Callable[P, Coroutine[Any, Any, R]], /, **options: Unpack[ComputeOptions]
        ) -> TaskQueue[P, R, Coroutine[Any, Any, R]]: ...
        @overload
        def __call__(self, f: Callable[P, R], /, **options: Unpack[ComputeOptions]) -> TaskQueue[P, R]: ...
        @overload
        def __call__(self, **options: Unpack[InputsOptions]) -> _TaskQueueInputsDecorator: ...
        @overload
        def __call__(self, **options: Unpack[ComputeOptions]) -> _TaskQueueDecorator: ...

    class _Schedules(Protocol):
        def __call__(
            self, when: str, timezone: str = "UTC", **options: Unpack[ComputeOptions]
        ) -> _ScheduleDecorator: ...


class App:
    """Functions deployed together under one name: ``App("vision")``, then ``@app.function(...)`` and the others."""

    def __init__(self, name: str) -> None:
        self.name = check_name("app", name)

    if TYPE_CHECKING:  # each is the module-level decorator of that name, with its overloads
        endpoint: _Endpoints
        function: _Functions
        task_queue: _TaskQueues
        schedule: _Schedules
    else:

        def endpoint(self, f=None, /, **options):
            """``@cove.endpoint`` in this app."""
            return _decorators.endpoint(f, **self._options(options))

        def function(self, f=None, /, **options):
            """``@cove.function`` in this app."""
            return _decorators.function(f, **self._options(options))

        def task_queue(self, f=None, /, **options):
            """``@cove.task_queue`` in this app."""
            return _decorators.task_queue(f, **self._options(options))

        def schedule(self, when, timezone="UTC", **options):
            """``@cove.schedule`` in this app."""
            return _decorators.schedule(when, timezone, **self._options(options))

    def _options(self, options: dict[str, Any]) -> dict[str, Any]:
        given = options.get("app")
        if given is not None and given != self.name:
            raise ConfigError(f"app={given!r} on a decorator of App({self.name!r}): leave it out")
        return {**options, "app": self.name}

    def __repr__(self) -> str:
        return f"App({self.name!r})"
