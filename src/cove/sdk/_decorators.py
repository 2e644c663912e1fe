"""The compute decorators.

Decorating does no work: it records the function and a ``DeploymentConfig``.
Calls go over HTTP only when ``.remote`` is used, so importing a user module
(on a laptop for ``cove deploy``, or inside a container) stays cheap. Like
the rest of what containers import, this module imports nothing heavy.
"""

from __future__ import annotations

from .._config import ConfigError, DeploymentConfig
from ._image import Image

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Generic, ParamSpec, TypeVar

    from .._config import Kind, QueueDepthAutoscaler

    P = ParamSpec("P")
    R = TypeVar("R")

    class _Generic(Generic[P, R]):
        pass
else:
    P = R = None

    class _Generic:
        def __class_getitem__(cls, _item: object) -> type:
            return cls


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def check_name(name: str) -> str:
    """Deployment names go into URLs: lowercase letters, digits, '-' and '_'."""
    if not isinstance(name, str) or not name or len(name) > 63 or not set(name) <= _NAME_CHARS or not name[0].isalnum():
        raise ConfigError(
            f"name {name!r} must be 1-63 characters of lowercase letters, digits, '-' or '_', starting alphanumeric"
        )
    return name


class Stub(_Generic[P, R]):
    """A decorated function: callable locally, deployable, invocable remotely."""

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

    def remote(self, **kwargs: Any) -> Any:
        """Invoke the deployed endpoint over HTTP and return its JSON result."""
        from ._client import Client

        with Client.from_env() as client:
            return client.invoke(self.name, kwargs, timeout=self.config.timeout)

    def __repr__(self) -> str:
        return f"<cove {self.kind} {self.name!r}>"


def endpoint(
    _f: Callable[P, R] | None = None,
    *,
    image: Image | None = None,
    cpu: float | str | None = None,
    memory: int | str | None = None,
    keep_warm_seconds: float | None = None,
    autoscaler: QueueDepthAutoscaler | None = None,
    concurrent_requests: int = 1,
    workers: int = 1,
    max_pending_tasks: int = 1000,
    timeout: float | None = None,
    authorized: bool = True,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    app: str | None = None,
    on_start: Callable[[], Any] | None = None,
) -> Any:
    """A synchronous HTTP endpoint: the JSON body arrives as keyword arguments."""

    def wrap(f: Callable[P, R]) -> Stub[P, R]:
        config = DeploymentConfig.build(
            "endpoint",
            cpu=cpu,
            memory=memory,
            keep_warm_seconds=keep_warm_seconds,
            autoscaler=autoscaler,
            concurrent_requests=concurrent_requests,
            workers=workers,
            max_pending_tasks=max_pending_tasks,
            timeout=timeout,
            authorized=authorized,
            env=env,
        )
        return Stub(f, kind="endpoint", image=image or Image(), config=config, name=name, app=app, on_start=on_start)

    return wrap(_f) if _f is not None else wrap
