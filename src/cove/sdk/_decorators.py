"""The compute decorators.

Decorating does no work: it records the function and a ``DeploymentConfig``.
Calls go over HTTP only when ``.remote`` is used, so importing a user module
(on a laptop for ``cove deploy``, or inside a container) stays cheap.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar

from .._config import ConfigError, DeploymentConfig, Kind, QueueDepthAutoscaler
from ._image import Image

P = ParamSpec("P")
R = TypeVar("R")

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


def check_name(name: str) -> str:
    """Deployment names go into URLs: lowercase letters, digits, '-' and '_'."""
    if not name or len(name) > 63 or not set(name) <= _NAME_CHARS or not name[0].isalnum():
        raise ConfigError(
            f"name {name!r} must be 1-63 characters of lowercase letters, digits, '-' or '_', starting alphanumeric"
        )
    return name


class Stub(Generic[P, R]):
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
        self.raw_f = raw_f
        self.kind = kind
        self.image = image
        self.config = config
        self.name = check_name(name or raw_f.__name__.replace("_", "-").lower())
        self._app = app
        self.on_start = on_start
        functools.update_wrapper(self, raw_f)

    @property
    def app(self) -> str:
        """The app group: given, else the folder that holds the function's file."""
        if self._app:
            return self._app
        source = inspect.getsourcefile(self.raw_f)
        return Path(source).resolve().parent.name if source else "default"

    def local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here, in this process."""
        return self.raw_f(*args, **kwargs)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.raw_f(*args, **kwargs)

    def remote(self, **kwargs: Any) -> Any:
        """Invoke the deployed endpoint over HTTP and return its JSON result."""
        from ._client import Client

        return Client.from_env().invoke(self.name, kwargs, timeout=self.config.timeout)

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
