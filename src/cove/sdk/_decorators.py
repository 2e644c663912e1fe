"""The compute decorators: ``@endpoint``, ``@function`` and ``@task_queue``.

Decorating does no work: it records the function and a ``DeploymentConfig``.
Calls go over HTTP only when ``.remote``/``.map``/``.put`` are used, so
importing a user module (on a laptop for ``cove deploy``, or inside a
container) stays cheap. Like the rest of what containers import, this module
imports nothing heavy.
"""

from __future__ import annotations

from .._config import ConfigError, DeploymentConfig
from ._image import Image

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from typing import Any, Generic, ParamSpec, TypedDict, TypeVar, Unpack

    from .._config import Kind, QueueDepthAutoscaler, TaskPolicy
    from ._calls import FunctionCall, Task
    from ._volume import Volume

    P = ParamSpec("P")
    R = TypeVar("R")

    class _Generic(Generic[P, R]):
        pass

    class ComputeOptions(TypedDict, total=False):
        """What every compute decorator accepts (defaults: ``DeploymentConfig.build``)."""

        image: Image
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
        app: str
        on_start: Callable[[], Any]
        inputs: type
        gpu: str | list[str]
        gpu_count: int
        gpu_memory: int | str
        gpu_compute: int
        pool: str
        network: list[str]  # "host:port" TCP destinations the container may reach; default: none
else:
    P = R = None

    class _Generic:
        def __class_getitem__(cls, _item: object) -> type:
            return cls


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_STUB_OPTIONS = frozenset({"image", "name", "app", "on_start", "inputs"})


def check_name(name: str) -> str:
    """Deployment names go into URLs: lowercase letters, digits, '-' and '_'."""
    if not isinstance(name, str) or not name or len(name) > 63 or not set(name) <= _NAME_CHARS or not name[0].isalnum():
        raise ConfigError(
            f"name {name!r} must be 1-63 characters of lowercase letters, digits, '-' or '_', starting alphanumeric"
        )
    return name


class Stub(_Generic[P, R]):
    """A decorated function: callable locally and deployable."""

    def __init__(
        self,
        raw_f: Callable[P, R],
        *,
        kind: Kind,
        image: Image,
        config: DeploymentConfig,
        name: str | None,
        app: str | None,
        on_start: Callable[[], Any] | None,
        inputs: type | None = None,
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
        self.name = check_name(name or raw_f.__name__.replace("_", "-").lower())
        self._app = app
        self.on_start = on_start
        self.inputs = inputs
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

    def local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here, in this process."""
        return self.raw_f(*args, **kwargs)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.raw_f(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<cove {self.kind} {self.name!r}>"


class EndpointStub(Stub[P, R]):
    """An ``@endpoint``: JSON in, JSON out, over ``POST /endpoint/{name}``."""

    def remote(self, **kwargs: Any) -> Any:
        """Invoke the deployed endpoint over HTTP and return its JSON result."""
        from ._client import Client

        return Client.shared().invoke(self.name, kwargs, timeout=self.config.timeout)


class _Remote:
    """``f.remote(...)`` blocks; ``await f.remote.aio(...)`` does not block the event loop."""

    def __init__(self, stub: FunctionStub[Any, Any]) -> None:
        self._stub = stub

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from ._calls import FOLLOW_OUTPUT_HEADER, dumps_arguments, follow, outcome
        from ._client import Client

        client = Client.shared()
        body = dumps_arguments(args, kwargs)
        response = client.raw(
            "POST",
            f"/api/v1/functions/{self._stub.name}/calls",
            content=body,
            headers={"Content-Type": "application/octet-stream", FOLLOW_OUTPUT_HEADER: "1"},
            timeout=None,
        )
        if response.status_code == 202:  # still running, and printing: show it as it comes
            return follow(response.json()["call_id"], client)
        return outcome(response.status_code, response.headers, response.content)

    async def aio(self, *args: Any, **kwargs: Any) -> Any:
        import asyncio

        return await asyncio.to_thread(self, *args, **kwargs)


class FunctionStub(Stub[P, R]):
    """A ``@function``: ``.remote``, ``.spawn``, ``.map``, ``.starmap``, ``.local``."""

    @property
    def remote(self) -> _Remote:
        return _Remote(self)

    def spawn(self, *args: Any, **kwargs: Any) -> FunctionCall:
        """Start a call and return at once; the call is durable once this returns."""
        return self._spawn(args, kwargs, None)

    def with_options(self, *, idempotency_key: str) -> CallOptions:
        """Options for one call, kept apart from the function's own arguments.

        ``f.with_options(idempotency_key="order-42").spawn(...)``: a spawn (or
        ``.put``) sent again with the same key within 24 hours returns the call
        the first one started instead of starting another; the same key with
        different arguments raises ``CoveError`` (422).
        """
        from ._calls import check_idempotency_key

        return CallOptions(self, check_idempotency_key(idempotency_key))

    def _spawn(self, args: tuple[Any, ...], kwargs: dict[str, Any], key: str | None) -> FunctionCall:
        from ._calls import FunctionCall, dumps_arguments, spawn_call
        from ._client import Client

        client = Client.shared()
        return FunctionCall(spawn_call(client, self.name, dumps_arguments(args, kwargs), key), client)

    def map(
        self,
        *iterables: Iterable[Any],
        order_outputs: bool = True,
        return_exceptions: bool = False,
        kwargs: Mapping[str, Any] | None = None,
        progress: bool | None = None,
    ) -> Iterator[Any]:
        """Run the function on each input (zipped across ``iterables``) in parallel containers."""
        extra = dict(kwargs or {})
        return self._map(
            ((args, extra) for args in zip(*iterables, strict=False)), order_outputs, return_exceptions, progress
        )

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
        return self._map(((tuple(args), extra) for args in arg_tuples), order_outputs, return_exceptions, progress)

    def _map(self, inputs: Any, order_outputs: bool, return_exceptions: bool, progress: bool | None) -> Iterator[Any]:
        from ._client import Client
        from ._map import run_map

        client = Client.shared()
        yield from run_map(
            client,
            self.name,
            inputs,
            order_outputs=order_outputs,
            return_exceptions=return_exceptions,
            progress=progress,
        )


class CallOptions:
    """``stub.with_options(...)``: ``.spawn`` and ``.put`` with per-call options such as an idempotency key."""

    def __init__(self, stub: FunctionStub[Any, Any], idempotency_key: str) -> None:
        self._stub = stub
        self.idempotency_key = idempotency_key

    def spawn(self, *args: Any, **kwargs: Any) -> FunctionCall:
        """``stub.spawn(...)`` under this idempotency key."""
        return self._stub._spawn(args, kwargs, self.idempotency_key)

    def put(self, *args: Any, **kwargs: Any) -> Task:
        """``stub.put(...)`` under this idempotency key (task queues only)."""
        if not isinstance(self._stub, TaskQueueStub):
            raise TypeError(f"{self._stub!r} is not a task queue: use .spawn")
        return _as_task(self.spawn(*args, **kwargs))

    def __repr__(self) -> str:
        return f"<cove call options of {self._stub.name!r}: idempotency_key={self.idempotency_key!r}>"


def _as_task(call: FunctionCall) -> Task:
    from ._calls import Task

    return Task(call.object_id, call._client)


class TaskQueueStub(FunctionStub[P, R]):
    """A ``@task_queue``: ``.put`` returns a durable ``Task`` at once."""

    def put(self, *args: Any, **kwargs: Any) -> Task:
        """Put a task on the queue; it is durable once this returns."""
        return _as_task(self.spawn(*args, **kwargs))


class ScheduleStub(FunctionStub[P, R]):
    """A ``@schedule``: runs on its cron ticks once deployed; ``.remote`` runs it now."""


def _decorate(kind: Kind, stub_type: type[Stub[Any, Any]], f: Any, options: dict[str, Any], **fixed: Any) -> Any:
    def wrap(fn: Callable[..., Any]) -> Stub[Any, Any]:
        # Everything that is not about the stub itself is configuration; build() names any unknown option.
        settings = {k: v for k, v in options.items() if k not in _STUB_OPTIONS}
        inputs = options.get("inputs")
        if inputs is not None:
            from ..schema import Schema

            if not (isinstance(inputs, type) and issubclass(inputs, Schema)):
                raise ConfigError(f"inputs must be a cove.schema.Schema subclass, not {inputs!r}")
            settings["inputs"] = inputs.describe()
        try:
            config = DeploymentConfig.build(kind, **settings, **fixed)
        except TypeError as exc:
            raise ConfigError(f"@{kind}: {str(exc).replace('build()', 'option')}") from None
        return stub_type(
            fn,
            kind=kind,
            image=options.get("image") or Image(),
            config=config,
            name=options.get("name"),
            app=options.get("app"),
            on_start=options.get("on_start"),
            inputs=inputs,
        )

    return wrap(f) if f is not None else wrap


def endpoint(_f: Callable[P, R] | None = None, /, **options: Unpack[ComputeOptions]) -> Any:
    """A synchronous HTTP endpoint: the JSON body arrives as keyword arguments."""
    return _decorate("endpoint", EndpointStub, _f, dict(options))


def function(_f: Callable[P, R] | None = None, /, **options: Unpack[ComputeOptions]) -> Any:
    """A function called from Python with ``.remote``, ``.spawn`` and ``.map``."""
    return _decorate("function", FunctionStub, _f, dict(options))


def task_queue(_f: Callable[P, R] | None = None, /, **options: Unpack[ComputeOptions]) -> Any:
    """A durable queue of tasks: ``.put`` from Python, ``POST /taskqueue/{name}`` over HTTP."""
    return _decorate("task_queue", TaskQueueStub, _f, dict(options))


def schedule(when: str, timezone: str = "UTC", **options: Unpack[ComputeOptions]) -> Any:
    """Run the function at every tick of the cron expression ``when`` in ``timezone``.

    Five fields as in crontab, or six with seconds last. Runs missed while no
    gateway was up are recorded as missed, not replayed.
    """
    import os

    if not os.environ.get("COVE_CONTAINER_ID"):  # the container need not pay for croniter
        from ..scheduler._cron import BadSchedule, check

        try:
            check(when, timezone)
        except BadSchedule as exc:
            raise ConfigError(str(exc)) from None
    return _decorate("schedule", ScheduleStub, None, dict(options), schedule=(when, timezone))
