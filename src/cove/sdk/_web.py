"""``@asgi`` and ``@wsgi``: a function that returns a web app, served as it is.

The decorated function is a factory: the container calls it once, after
importing the module, and serves what it returns under
``/asgi/{name}/`` (``cove._wire.urls``). ``@asgi`` takes an ASGI app (FastAPI,
Starlette, ...); ``@wsgi`` a WSGI one (Flask, Django's WSGI handler, ...),
which the runner adapts. Both are deployments of kind ``asgi``: the same URL,
the same scaling, the same defaults; only the runner tells them apart, by the
``interface`` of the object it finds at the deployed name. They take the
options of every compute decorator (``ComputeOptions``), declared once in
``_decorators`` and checked by ``DeploymentConfig``.
"""

from __future__ import annotations

from ..exceptions import ConfigError
from ._decorators import Deployable, _decorate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, Protocol, TypeVar, Unpack, overload

    from ._decorators import ComputeOptions

    A = TypeVar("A")  # the app the factory returns

    class _AsgiDecorator(Protocol):
        def __call__(self, f: Callable[[], A], /) -> AsgiApp[A]: ...

    class _WsgiDecorator(Protocol):
        def __call__(self, f: Callable[[], A], /) -> WsgiApp[A]: ...

else:
    A = None

# Options of other decorators that mean nothing for a web app, with what to do instead.
_REFUSED = {"inputs": "a web app reads its own requests; inputs= is for @endpoint, @function and @task_queue"}


class WebApp(Deployable[[], A, A]):
    """A deployed web app: calling it (or ``.local()``) here builds the app, as the container does."""

    interface: ClassVar[str]
    """How the runner serves what the factory returns: ``"asgi"`` or ``"wsgi"``."""

    def __repr__(self) -> str:
        return f"<cove {self.interface} app {self.name!r}>"


class AsgiApp(WebApp[A]):
    """An ``@asgi`` app: the factory returns an ASGI application."""

    interface = "asgi"


class WsgiApp(WebApp[A]):
    """A ``@wsgi`` app: the factory returns a WSGI application, run by the container in a thread pool."""

    interface = "wsgi"


def _web(cls: type[WebApp[Any]], f: Callable[[], Any] | None, options: dict[str, Any]) -> Any:
    decorator = f"@{cls.interface}"
    for option, why in _REFUSED.items():
        if option in options:
            raise ConfigError(f"{decorator} takes no {option}=: {why}")
    inner = _decorate("asgi", cls, None, options)

    def wrap(fn: Callable[[], Any]) -> Any:
        if isinstance(fn, type):
            raise ConfigError(f"{decorator} decorates a function that returns the app, not a class")
        return inner(fn)

    return wrap(f) if f is not None else wrap


if TYPE_CHECKING:

    @overload
    def asgi(f: Callable[[], A], /, **options: Unpack[ComputeOptions]) -> AsgiApp[A]: ...
    @overload
    def asgi(**options: Unpack[ComputeOptions]) -> _AsgiDecorator: ...


def asgi(f: Callable[[], Any] | None = None, /, **options: Any) -> Any:
    """A web app: the function returns an ASGI app (FastAPI, Starlette...), served under ``/asgi/{name}/``."""
    return _web(AsgiApp, f, dict(options))


if TYPE_CHECKING:

    @overload
    def wsgi(f: Callable[[], A], /, **options: Unpack[ComputeOptions]) -> WsgiApp[A]: ...
    @overload
    def wsgi(**options: Unpack[ComputeOptions]) -> _WsgiDecorator: ...


def wsgi(f: Callable[[], Any] | None = None, /, **options: Any) -> Any:
    """A web app: the function returns a WSGI app (Flask...), served under ``/asgi/{name}/``."""
    return _web(WsgiApp, f, dict(options))
