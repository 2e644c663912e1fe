"""The compute decorators: ``@endpoint``, ``@function``, ``@task_queue`` and ``@schedule``.

Decorating does no work: it records the function and a ``DeploymentConfig``.
Calls go over HTTP only when ``.remote``/``.map``/``.put`` are used, so
importing a user module (on a laptop for ``cove deploy``, or inside a
container) stays cheap. Like the rest of what containers import, this module
imports nothing heavy: not even ``typing``, which only type checkers read, so
the ``@overload`` variants sit under ``if TYPE_CHECKING:`` before the one
definition that runs.

Each decorator keeps the function's signature (a ``ParamSpec``) and its
result type, so a type checker reports ``add.remote("2", 3, 4)`` as it would
``add("2", 3, 4)``: ``Function[P, R]`` calls as ``(*P) -> R`` remotely,
``spawn`` returns ``FunctionCall[R]``, ``map`` yields ``R``. An ``async def``
runs to completion in the container, so its remote result is the awaited
value: the third parameter, ``L``, keeps what a local call returns (the
coroutine). With ``inputs=Schema`` the call takes the schema's fields instead
of the function's parameters; those calls are not checked (``Function[..., R]``).
"""

from __future__ import annotations

from .._wire.batching import MARK
from .._wire.config import DeploymentConfig
from .._wire.names import check_name
from ..exceptions import ConfigError
from ..schema import SchemaError, validate
from ._classes import OWNER
from ._image import Image

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        AsyncIterator,
        Callable,
        Coroutine,
        Generator,
        Iterable,
        Iterator,
        Mapping,
    )
    from typing import Any, Generic, Literal, ParamSpec, Protocol, Required, Self, TypedDict, Unpack, overload

    from typing_extensions import TypeVar  # a default for L; ``typing.TypeVar`` takes one from Python 3.13

    from .._wire.kinds import Kind
    from .._wire.policies import QueueDepthAutoscaler, TaskPolicy
    from ..schema import Schema
    from ._calls import FunctionCall, Task
    from ._model import Model
    from ._volume import Volume

    P = ParamSpec("P")
    Q = ParamSpec("Q")  # a generator function's parameters, for ``remote_gen``
    T = TypeVar("T")  # the items a generator function yields
    R = TypeVar("R")  # what a remote call returns
    L = TypeVar("L", default=R)  # what a local call returns: R, or a coroutine of R for an ``async def``
    A = TypeVar("A")
    B = TypeVar("B")
    C = TypeVar("C")
    D = TypeVar("D")

    class ComputeOptions(TypedDict, total=False):
        """What every compute decorator accepts (``docs/options.md`` lists each with its defaults and bounds).

        The options the deployment's config keeps are documented once, on
        their ``DeploymentConfig`` field; the ones the SDK keeps, here.
        """

        image: Image
        """The container image (``cove.Image``): Python version, packages, files; default ``Image()``."""
        cpu: float | str
        memory: int | str
        keep_warm_seconds: float
        autoscaler: QueueDepthAutoscaler
        concurrent_requests: int
        workers: int
        max_pending_tasks: int
        timeout: float
        retries: int
        task_policy: TaskPolicy
        authorized: bool
        env: Mapping[str, str]
        callback_url: str
        secrets: list[str]
        volumes: list[Volume] | Mapping[str, Volume]
        name: str
        """The deployment's name; default: the function's, lower case with ``-`` for ``_``."""
        app: str
        """The app that groups deployments; default: the folder that holds the function's file."""
        on_start: Callable[[], Any]
        """Runs once in each container before its first call; its value reaches ``context.on_start_value``."""
        gpu: str | list[str]
        gpu_count: int
        gpu_memory: int | str
        gpu_compute: int
        pool: str
        network: list[str]
        models: list[str | Model]

    class InputsOptions(ComputeOptions, total=False):
        """``ComputeOptions`` with ``inputs``: calls then take the schema's fields, not the function's parameters."""

        inputs: Required[type[Schema]]

    # What ``@endpoint(...)`` and the others return: a decorator that keeps the function's types.
    class _EndpointDecorator(Protocol):
        @overload
        def __call__(self, f: Callable[P, Coroutine[Any, Any, R]], /) -> Endpoint[P, R, Coroutine[Any, Any, R]]: ...
        @overload
        def __call__(self, f: Callable[P, R], /) -> Endpoint[P, R]: ...

    class _EndpointInputsDecorator(Protocol):
        @overload
        def __call__(self, f: Callable[..., Coroutine[Any, Any, R]], /) -> Endpoint[..., R, Coroutine[Any, Any, R]]: ...
        @overload
        def __call__(self, f: Callable[..., R], /) -> Endpoint[..., R]: ...

    class _FunctionDecorator(Protocol):
        @overload
        def __call__(self, f: Callable[P, Coroutine[Any, Any, R]], /) -> Function[P, R, Coroutine[Any, Any, R]]: ...
        @overload
        def __call__(self, f: Callable[P, R], /) -> Function[P, R]: ...

    class _FunctionInputsDecorator(Protocol):
        @overload
        def __call__(self, f: Callable[..., Coroutine[Any, Any, R]], /) -> Function[..., R, Coroutine[Any, Any, R]]: ...
        @overload
        def __call__(self, f: Callable[..., R], /) -> Function[..., R]: ...

    class _TaskQueueDecorator(Protocol):
        @overload
        def __call__(self, f: Callable[P, Coroutine[Any, Any, R]], /) -> TaskQueue[P, R, Coroutine[Any, Any, R]]: ...
        @overload
        def __call__(self, f: Callable[P, R], /) -> TaskQueue[P, R]: ...

    class _TaskQueueInputsDecorator(Protocol):
        @overload
        def __call__(
            self, f: Callable[..., Coroutine[Any, Any, R]], /
        ) -> TaskQueue[..., R, Coroutine[Any, Any, R]]: ...
        @overload
        def __call__(self, f: Callable[..., R], /) -> TaskQueue[..., R]: ...

    class _ScheduleDecorator(Protocol):
        @overload
        def __call__(self, f: Callable[P, Coroutine[Any, Any, R]], /) -> Schedule[P, R, Coroutine[Any, Any, R]]: ...
        @overload
        def __call__(self, f: Callable[P, R], /) -> Schedule[P, R]: ...


else:
    P = R = L = None

    class Generic:
        """Stands in for ``typing.Generic`` at run time, where ``Function[P, R]`` needs no more than a class."""

        def __class_getitem__(cls, _item: object) -> type:
            return cls


_STUB_OPTIONS = frozenset({"image", "name", "app", "on_start", "inputs"})  # kept by the object, not the config
# Which deployment a call goes to: set by ``cove.sdk`` to ``_ephemeral.target_name``, which may deploy a
# script's app, so this module (which deploying imports) does not import it.
_ROUTE: list[Callable[[Deployable[Any, Any, Any]], str | None]] = []


def route_calls(resolve: Callable[[Deployable[Any, Any, Any]], str | None]) -> None:
    """Send every call through ``resolve``, which names the deployment it goes to (None: skip the call)."""
    _ROUTE[:] = [resolve]


class Deployable(Generic[P, R, L]):
    """What every compute decorator returns: the function, callable here as before, and what deploys it.

    Named ``Stub`` before; that name stays, as a deprecated alias, for one release.
    """

    def __init__(
        self,
        raw_f: Callable[P, L],
        *,
        kind: Kind,
        image: Image,
        config: DeploymentConfig,
        name: str | None,
        app: str | None,
        on_start: Callable[[], Any] | None,
        inputs: type[Schema] | None = None,
    ) -> None:
        if not callable(raw_f):
            raise ConfigError(f"@{kind} must decorate a function, not {type(raw_f).__name__}")
        if on_start is not None and not callable(on_start):
            raise ConfigError("on_start must be callable")
        if not isinstance(image, Image):
            raise ConfigError(f"image must be a cove.Image, not {type(image).__name__}")
        self.raw_f = raw_f
        self.kind = kind
        self.image = image
        self.config = config
        self.name = check_name("deployment", name or raw_f.__name__.replace("_", "-").lower())
        self._app = app
        self.on_start = on_start
        self.inputs = inputs
        # A class's constructor parameters for this handle's calls (``Model(size="large").predict``); see _classes.
        self.class_parameters: dict[str, Any] = {}
        self.__name__ = getattr(raw_f, "__name__", self.name)
        self.__qualname__ = getattr(raw_f, "__qualname__", self.name)
        self.__doc__ = raw_f.__doc__
        self.__module__ = raw_f.__module__
        self.__wrapped__ = raw_f

    @property
    def app(self) -> str:
        """The app group: given, else the folder that holds the function's file."""
        if self._app:
            return self._app
        import inspect
        import os.path

        source = inspect.getsourcefile(self.raw_f)
        return os.path.basename(os.path.dirname(os.path.abspath(source))) if source else "default"

    def _target(self) -> str | None:
        """The deployment a call goes to now (None: skip the call); see ``cove.sdk._ephemeral``.

        Its own name, or its app's name for it; from a script, its app is first deployed
        ephemerally when it is not deployed as the script has it.
        """
        return _ROUTE[0](self) if _ROUTE else self.name

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """A pickled call's arguments as its handler takes them.

        With ``inputs=Schema``: one instance of the schema, or its fields by
        name, become the fields by name, checked here against the schema (the
        gateway checks JSON bodies; it never unpickles a call).
        """
        if self.inputs is None:
            return args, kwargs
        body = self._schema_body(args, kwargs)
        try:
            validate(self.inputs.describe(), body)
        except SchemaError as exc:
            raise SchemaError(f"{self.name}: {exc}") from None
        return (), body

    def _schema_body(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The JSON body of a call with ``inputs=Schema`` (``cove.schema.call_body``), naming this deployment."""
        from ..schema import call_body

        assert self.inputs is not None
        try:
            return call_body(self.inputs, args, kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name} {exc}") from None

    def with_parameters(self, values: dict[str, Any]) -> Self:
        """A copy whose calls go to containers made with these constructor parameters (checked by the caller)."""
        import copy

        bound = copy.copy(self)
        bound.class_parameters = dict(values)
        return bound

    def _parameter_headers(self) -> dict[str, str]:
        """An endpoint call's header naming its constructor parameters (none: the defaults)."""
        if not self.class_parameters:
            return {}
        from .._wire.parameters import HEADER, dumps

        return {HEADER: dumps(self.class_parameters)}

    def local(self, *args: P.args, **kwargs: P.kwargs) -> L:
        """Run the function here, in this process."""
        return self.raw_f(*args, **kwargs)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> L:
        """Run the function here, as if it were not decorated (a coroutine for an ``async def``)."""
        return self.raw_f(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<cove {self.kind} {self.name!r}>"


def _refuse_generator(deployable: Deployable[Any, Any, Any], method: str) -> None:
    """A generator function's items come with ``remote_gen``; ``.remote`` (which returns one value) says so."""
    code = getattr(deployable.raw_f, "__code__", None)
    if code is not None and code.co_flags & _GENERATOR_FLAGS:
        raise TypeError(
            f"{deployable.name} is a generator function: iterate over its items with "
            f"{deployable.__name__}.remote_gen(...), not .{method}(...)"
        )


_GENERATOR_FLAGS = 0x20 | 0x200  # inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR, without importing inspect


class Endpoint(Deployable[P, R, L]):
    """An ``@endpoint``: JSON in, JSON out, over ``POST /endpoint/{name}``.

    Named ``EndpointStub`` before; that name stays, as a deprecated alias, for one release.
    """

    def remote(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Invoke the deployed endpoint over HTTP and return its result.

        The arguments travel as one JSON object, so positional ones are sent
        under their parameter names, and the result is what JSON carries back
        (a tuple returns as a list).
        """
        from .client import Client

        _refuse_generator(self, "remote")
        body = self._by_name(args, kwargs)
        name = self._target()
        if name is None:  # made while its module is imported to be served or deployed: not run
            return None  # type: ignore[return-value]
        result: R = Client.shared().invoke(name, body, timeout=self.config.timeout, headers=self._parameter_headers())
        return result

    def remote_gen(self, *args: P.args, **kwargs: P.kwargs) -> Iterator[Any]:
        """Invoke a generator endpoint and iterate over its items as it yields them (each as JSON carries it)."""
        from ._calls import stream_json
        from .client import Client

        body = self._by_name(args, kwargs)
        name = self._target()
        if name is None:  # made while its module is imported to be served or deployed: not run
            return iter(())
        return stream_json(Client.shared(), f"/endpoint/{name}", body, self._parameter_headers())

    def _by_name(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments as the endpoint's JSON body: each positional one under its parameter's name."""
        if self.inputs is not None:  # one instance of the schema, or its fields by name; the gateway checks them
            return self._schema_body(args, kwargs)
        if not args:
            return kwargs
        import inspect

        names = [
            parameter.name
            for parameter in inspect.signature(self.raw_f).parameters.values()
            if parameter.kind is parameter.POSITIONAL_OR_KEYWORD and parameter.name != "context"
        ]
        if hasattr(self, OWNER):  # a class's @method: the container binds ``self`` to its instance
            names = names[1:]
        if len(args) > len(names):
            raise TypeError(
                f"{self.name}.remote takes at most {len(names)} arguments by position ({len(args)} given): "
                "an endpoint's arguments travel as one JSON object"
            )
        body = dict(zip(names[: len(args)], args, strict=True))
        for name, value in kwargs.items():
            if name in body:
                raise TypeError(f"{self.name}.remote got multiple values for argument {name!r}")
            body[name] = value
        return body


class Remote(Generic[P, R]):
    """``f.remote``: ``f.remote(...)`` blocks; ``await f.remote.aio(...)`` does not block the event loop."""

    def __init__(self, function: Function[P, R, Any]) -> None:
        self._function = function

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function in a container and return its result (its exception, raised here, if it fails)."""
        from ._call_context import call_headers
        from ._calls import FOLLOW_OUTPUT_HEADER, dumps_arguments, follow, outcome
        from ._waiting import watching
        from .client import Client

        _refuse_generator(self._function, "remote")
        name = self._function._target()
        if name is None:  # made while its module is imported to be served or deployed: not run
            return None  # type: ignore[return-value]
        client = Client.shared()
        function = self._function
        body = dumps_arguments(*function._arguments(args, kwargs), parameters=function.class_parameters)
        with watching(client, name):  # a line on stderr, saying why, if it waits more than a second
            response = client.raw(
                "POST",
                f"/api/v1/functions/{name}/calls",
                content=body,
                headers={"Content-Type": "application/octet-stream", FOLLOW_OUTPUT_HEADER: "1", **call_headers()},
                timeout=None,
            )
        if response.status_code == 202:  # still running, and printing: show it as it comes
            followed: R = follow(response.json()["call_id"], client)
            return followed
        result: R = outcome(response.status_code, response.headers, response.content)
        return result

    async def aio(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """``.remote`` from async code: the call waits in a thread, the event loop runs on."""
        import asyncio

        return await asyncio.to_thread(self, *args, **kwargs)


class Function(Deployable[P, R, L]):
    """A ``@function``: ``.remote``, ``.spawn``, ``.map``, ``.starmap``, ``.local``.

    Named ``FunctionStub`` before; that name stays, as a deprecated alias, for one release.
    """

    @property
    def remote(self) -> Remote[P, R]:
        """Call the function in a container: ``f.remote(...)``, or ``await f.remote.aio(...)``."""
        return Remote(self)

    if TYPE_CHECKING:  # the items' type, from the generator's annotation (``Iterator[T]``, ``Generator[T, ...]``...)

        @overload
        def remote_gen(self: Function[Q, Iterator[T], Any], *args: Q.args, **kwargs: Q.kwargs) -> Iterator[T]: ...
        @overload
        def remote_gen(
            self: Function[Q, Generator[T, Any, Any], Any], *args: Q.args, **kwargs: Q.kwargs
        ) -> Iterator[T]: ...
        @overload
        def remote_gen(self: Function[Q, AsyncIterator[T], Any], *args: Q.args, **kwargs: Q.kwargs) -> Iterator[T]: ...
        @overload
        def remote_gen(
            self: Function[Q, AsyncGenerator[T, Any], Any], *args: Q.args, **kwargs: Q.kwargs
        ) -> Iterator[T]: ...
        @overload
        def remote_gen(self, *args: P.args, **kwargs: P.kwargs) -> Iterator[Any]: ...

    def remote_gen(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Run a generator function in a container and iterate over its items as it yields them.

        The call is live, not durable: it runs once (no retries), within the
        function's ``timeout``; a ``break`` stops the generator in its container.
        """
        from ._calls import dumps_arguments, stream_items
        from .client import Client

        name = self._target()
        if name is None:  # made while its module is imported to be served or deployed: not run
            return iter(())
        client = Client.shared()
        body = dumps_arguments(*self._arguments(args, kwargs), client, parameters=self.class_parameters)
        return stream_items(client, name, body)

    def spawn(self, *args: P.args, **kwargs: P.kwargs) -> FunctionCall[R]:
        """Start a call and return at once; the call is durable once this returns."""
        return self._spawn(args, kwargs, None)

    def with_options(self, *, idempotency_key: str) -> CallOptions[P, R]:
        """Options for one call, kept apart from the function's own arguments.

        ``f.with_options(idempotency_key="order-42").spawn(...)``: a spawn (or
        ``.put``) sent again with the same key within 24 hours returns the call
        the first one started instead of starting another; the same key with
        different arguments raises ``cove.exceptions.ResponseError`` (422).
        """
        from ._calls import check_idempotency_key

        return CallOptions(self, check_idempotency_key(idempotency_key))

    def _spawn(self, args: tuple[Any, ...], kwargs: dict[str, Any], key: str | None) -> FunctionCall[R]:
        from ._calls import FunctionCall, dumps_arguments, spawn_call
        from .client import Client

        _refuse_generator(self, "put" if self.kind == "task_queue" else "spawn")
        name = self._target()
        if name is None:  # made while its module is imported to be served or deployed: not run
            return None  # type: ignore[return-value]
        client = Client.shared()
        body = dumps_arguments(*self._arguments(args, kwargs), parameters=self.class_parameters)
        return FunctionCall(spawn_call(client, name, body, key), client)

    # One typed variant per number of iterables, up to four: each iterable's items must fit the parameter
    # in its position. More iterables, ``kwargs=`` or ``return_exceptions=`` leave the inputs unchecked.
    if TYPE_CHECKING:

        @overload
        def map(
            self: Callable[[A], object],
            a: Iterable[A],
            /,
            *,
            order_outputs: bool = True,
            return_exceptions: Literal[False] = False,
            kwargs: None = None,
            progress: bool | None = None,
        ) -> Iterator[R]: ...
        @overload
        def map(
            self: Callable[[A, B], object],
            a: Iterable[A],
            b: Iterable[B],
            /,
            *,
            order_outputs: bool = True,
            return_exceptions: Literal[False] = False,
            kwargs: None = None,
            progress: bool | None = None,
        ) -> Iterator[R]: ...
        @overload
        def map(
            self: Callable[[A, B, C], object],
            a: Iterable[A],
            b: Iterable[B],
            c: Iterable[C],
            /,
            *,
            order_outputs: bool = True,
            return_exceptions: Literal[False] = False,
            kwargs: None = None,
            progress: bool | None = None,
        ) -> Iterator[R]: ...
        @overload
        def map(
            self: Callable[[A, B, C, D], object],
            a: Iterable[A],
            b: Iterable[B],
            c: Iterable[C],
            d: Iterable[D],
            /,
            *,
            order_outputs: bool = True,
            return_exceptions: Literal[False] = False,
            kwargs: None = None,
            progress: bool | None = None,
        ) -> Iterator[R]: ...
        @overload
        def map(
            self,
            a: Iterable[Any],
            b: Iterable[Any],
            c: Iterable[Any],
            d: Iterable[Any],
            e: Iterable[Any],
            /,
            *more: Iterable[Any],
            order_outputs: bool = True,
            return_exceptions: Literal[False] = False,
            kwargs: Mapping[str, Any] | None = None,
            progress: bool | None = None,
        ) -> Iterator[R]: ...
        @overload
        def map(
            self,
            *iterables: Iterable[Any],
            kwargs: Mapping[str, Any],
            order_outputs: bool = True,
            return_exceptions: Literal[False] = False,
            progress: bool | None = None,
        ) -> Iterator[R]: ...
        @overload
        def map(
            self,
            *iterables: Iterable[Any],
            return_exceptions: bool,
            order_outputs: bool = True,
            kwargs: Mapping[str, Any] | None = None,
            progress: bool | None = None,
        ) -> Iterator[R | Exception]: ...

    def map(
        self,
        *iterables: Iterable[Any],
        order_outputs: bool = True,
        return_exceptions: bool = False,
        kwargs: Mapping[str, Any] | None = None,
        progress: bool | None = None,
    ) -> Iterator[Any]:
        """Run the function on each input (zipped across ``iterables``) in parallel containers.

        ``kwargs`` go to every call; with ``return_exceptions`` a failed input
        yields its exception instead of raising it.
        """
        extra = dict(kwargs or {})
        _refuse_generator(self, "map")
        name = self._target()
        if name is None:  # made while its module is imported to be served or deployed: not run
            return iter(())
        inputs = (self._arguments(args, extra) for args in zip(*iterables, strict=False))
        return self._map(name, inputs, order_outputs, return_exceptions, progress)

    if TYPE_CHECKING:

        @overload
        def starmap(
            self: Callable[[A], object],
            arg_tuples: Iterable[tuple[A]],
            *,
            order_outputs: bool = True,
            return_exceptions: Literal[False] = False,
            kwargs: None = None,
            progress: bool | None = None,
        ) -> Iterator[R]: ...
        @overload
        def starmap(
            self: Callable[[A, B], object],
            arg_tuples: Iterable[tuple[A, B]],
            *,
            order_outputs: bool = True,
            return_exceptions: Literal[False] = False,
            kwargs: None = None,
            progress: bool | None = None,
        ) -> Iterator[R]: ...
        @overload
        def starmap(
            self: Callable[[A, B, C], object],
            arg_tuples: Iterable[tuple[A, B, C]],
            *,
            order_outputs: bool = True,
            return_exceptions: Literal[False] = False,
            kwargs: None = None,
            progress: bool | None = None,
        ) -> Iterator[R]: ...
        @overload
        def starmap(
            self: Callable[[A, B, C, D], object],
            arg_tuples: Iterable[tuple[A, B, C, D]],
            *,
            order_outputs: bool = True,
            return_exceptions: Literal[False] = False,
            kwargs: None = None,
            progress: bool | None = None,
        ) -> Iterator[R]: ...
        @overload
        def starmap(
            self,
            arg_tuples: Iterable[tuple[Any, Any, Any, Any, Any, *tuple[Any, ...]]],
            *,
            order_outputs: bool = True,
            return_exceptions: Literal[False] = False,
            kwargs: Mapping[str, Any] | None = None,
            progress: bool | None = None,
        ) -> Iterator[R]: ...
        @overload
        def starmap(
            self,
            arg_tuples: Iterable[tuple[Any, ...]],
            *,
            kwargs: Mapping[str, Any],
            order_outputs: bool = True,
            return_exceptions: Literal[False] = False,
            progress: bool | None = None,
        ) -> Iterator[R]: ...
        @overload
        def starmap(
            self,
            arg_tuples: Iterable[tuple[Any, ...]],
            *,
            return_exceptions: bool,
            order_outputs: bool = True,
            kwargs: Mapping[str, Any] | None = None,
            progress: bool | None = None,
        ) -> Iterator[R | Exception]: ...

    def starmap(
        self,
        arg_tuples: Iterable[tuple[Any, ...]],
        *,
        order_outputs: bool = True,
        return_exceptions: bool = False,
        kwargs: Mapping[str, Any] | None = None,
        progress: bool | None = None,
    ) -> Iterator[Any]:
        """Like ``map``, with each item unpacked as the positional arguments."""
        extra = dict(kwargs or {})
        _refuse_generator(self, "starmap")
        name = self._target()
        if name is None:  # made while its module is imported to be served or deployed: not run
            return iter(())
        inputs = (self._arguments(tuple(args), extra) for args in arg_tuples)
        return self._map(name, inputs, order_outputs, return_exceptions, progress)

    def _map(
        self, name: str, inputs: Any, order_outputs: bool, return_exceptions: bool, progress: bool | None
    ) -> Iterator[Any]:
        from ._map import run_map
        from .client import Client

        client = Client.shared()
        yield from run_map(
            client,
            name,
            inputs,
            order_outputs=order_outputs,
            return_exceptions=return_exceptions,
            progress=progress,
            parameters=self.class_parameters,
        )


class CallOptions(Generic[P, R]):
    """``f.with_options(...)``: ``.spawn`` with per-call options such as an idempotency key."""

    def __init__(self, function: Function[P, R, Any], idempotency_key: str) -> None:
        self._function = function
        self.idempotency_key = idempotency_key

    def spawn(self, *args: P.args, **kwargs: P.kwargs) -> FunctionCall[R]:
        """``f.spawn(...)`` under this idempotency key."""
        return self._function._spawn(args, kwargs, self.idempotency_key)

    if not TYPE_CHECKING:  # only a task queue's options have ``put``: a type error elsewhere, and this at run time

        def put(self, *args, **kwargs):
            raise TypeError(f"{self._function!r} is not a task queue: use .spawn")

    def __repr__(self) -> str:
        return f"<cove call options of {self._function.name!r}: idempotency_key={self.idempotency_key!r}>"


class TaskQueueCallOptions(CallOptions[P, R]):
    """``queue.with_options(...)``: ``.put`` (and ``.spawn``) with per-call options such as an idempotency key."""

    def put(self, *args: P.args, **kwargs: P.kwargs) -> Task[R]:
        """``queue.put(...)`` under this idempotency key."""
        return _as_task(self.spawn(*args, **kwargs))


def _as_task(call: FunctionCall[R]) -> Task[R]:
    from ._calls import Task

    if call is None:  # a put made while its module is imported to be served or deployed: not run
        return None
    return Task(call.object_id, call._client)


class TaskQueue(Function[P, R, L]):
    """A ``@task_queue``: ``.put`` returns a durable ``Task`` at once.

    Named ``TaskQueueStub`` before; that name stays, as a deprecated alias, for one release.
    """

    def put(self, *args: P.args, **kwargs: P.kwargs) -> Task[R]:
        """Put a task on the queue; it is durable once this returns."""
        return _as_task(self.spawn(*args, **kwargs))

    def with_options(self, *, idempotency_key: str) -> TaskQueueCallOptions[P, R]:
        """Options for one put or spawn; see ``Function.with_options``."""
        from ._calls import check_idempotency_key

        return TaskQueueCallOptions(self, check_idempotency_key(idempotency_key))


class Schedule(Function[P, R, L]):
    """A ``@schedule``: runs on its cron ticks once deployed; ``.remote`` runs it now.

    Named ``ScheduleStub`` before; that name stays, as a deprecated alias, for one release.
    """


# The earlier names ("stub" was Modal's word, since retired there too): deprecated aliases, kept for one release
# so that code and pickles that name them still work. ``cove.Stub`` also warns (``cove/__init__.py``).
Stub = Deployable
EndpointStub = Endpoint
FunctionStub = Function
TaskQueueStub = TaskQueue
ScheduleStub = Schedule


def _decorate(kind: Kind, cls: type[Deployable[Any, Any]], f: Any, options: dict[str, Any], **fixed: Any) -> Any:
    def wrap(fn: Callable[..., Any]) -> Any:
        if isinstance(fn, type):  # a class: one deployable per @cove.method (see _classes)
            from ._classes import DeployableClass

            return DeployableClass(fn, make, options.get("name"))
        return make(fn, options.get("name"))

    def make(fn: Callable[..., Any], name: str | None, class_parameters: tuple[Any, ...] = ()) -> Deployable[Any, Any]:
        # Everything that is not about the object itself is configuration; build() names any unknown option.
        settings = {k: v for k, v in options.items() if k not in _STUB_OPTIONS}
        inputs = options.get("inputs")
        if inputs is not None:
            from ..schema import Schema

            if not (isinstance(inputs, type) and issubclass(inputs, Schema)):
                raise ConfigError(f"inputs must be a cove.schema.Schema subclass, not {inputs!r}")
            settings["inputs"] = inputs.describe()
        if hasattr(fn, MARK):  # @batched: its module (and typing) is imported only when used
            from .._wire.defaults import defaults_for
            from ._batched import batching_defaults

            settings = batching_defaults(fn, settings, defaults_for(kind))
        try:
            config = DeploymentConfig.build(kind, **settings, **fixed)
        except TypeError as exc:
            raise ConfigError(f"@{kind}: {str(exc).replace('build()', 'option')}") from None
        if class_parameters:
            config = config.replace(class_parameters=class_parameters)
        return cls(
            fn,
            kind=kind,
            image=options.get("image") or Image(),
            config=config,
            name=name,
            app=options.get("app"),
            on_start=options.get("on_start"),
            inputs=inputs,
        )

    return wrap(f) if f is not None else wrap


if TYPE_CHECKING:

    @overload
    def endpoint(
        f: Callable[P, Coroutine[Any, Any, R]], /, **options: Unpack[ComputeOptions]
    ) -> Endpoint[P, R, Coroutine[Any, Any, R]]: ...
    @overload
    def endpoint(f: Callable[P, R], /, **options: Unpack[ComputeOptions]) -> Endpoint[P, R]: ...
    @overload
    def endpoint(**options: Unpack[InputsOptions]) -> _EndpointInputsDecorator: ...
    @overload
    def endpoint(**options: Unpack[ComputeOptions]) -> _EndpointDecorator: ...


def endpoint(f: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """A synchronous HTTP endpoint: the JSON body arrives as keyword arguments."""
    return _decorate("endpoint", Endpoint, f, dict(options))


if TYPE_CHECKING:

    @overload
    def function(
        f: Callable[P, Coroutine[Any, Any, R]], /, **options: Unpack[ComputeOptions]
    ) -> Function[P, R, Coroutine[Any, Any, R]]: ...
    @overload
    def function(f: Callable[P, R], /, **options: Unpack[ComputeOptions]) -> Function[P, R]: ...
    @overload
    def function(**options: Unpack[InputsOptions]) -> _FunctionInputsDecorator: ...
    @overload
    def function(**options: Unpack[ComputeOptions]) -> _FunctionDecorator: ...


def function(f: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """A function called from Python with ``.remote``, ``.spawn`` and ``.map``."""
    return _decorate("function", Function, f, dict(options))


if TYPE_CHECKING:

    @overload
    def task_queue(
        f: Callable[P, Coroutine[Any, Any, R]], /, **options: Unpack[ComputeOptions]
    ) -> TaskQueue[P, R, Coroutine[Any, Any, R]]: ...
    @overload
    def task_queue(f: Callable[P, R], /, **options: Unpack[ComputeOptions]) -> TaskQueue[P, R]: ...
    @overload
    def task_queue(**options: Unpack[InputsOptions]) -> _TaskQueueInputsDecorator: ...
    @overload
    def task_queue(**options: Unpack[ComputeOptions]) -> _TaskQueueDecorator: ...


def task_queue(f: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """A durable queue of tasks: ``.put`` from Python, ``POST /taskqueue/{name}`` over HTTP."""
    return _decorate("task_queue", TaskQueue, f, dict(options))


def schedule(when: str, timezone: str = "UTC", **options: Unpack[ComputeOptions]) -> _ScheduleDecorator:
    """Run the function at every tick of the cron expression ``when`` in ``timezone``.

    Five fields as in crontab, or six with seconds last. Runs missed while no
    gateway was up are recorded as missed, not replayed.
    """
    import os

    if not os.environ.get("COVE_CONTAINER_ID"):  # the container need not pay for croniter
        from .._wire.schedule import check_schedule

        check_schedule(when, timezone)  # a BadSchedule, which is a ConfigError, names what is wrong
    decorator: _ScheduleDecorator = _decorate("schedule", Schedule, None, dict(options), schedule=(when, timezone))
    return decorator
