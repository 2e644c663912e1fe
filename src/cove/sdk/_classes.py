"""Classes with a life cycle: ``@cove.enter`` once per container, ``@cove.method`` per call, ``@cove.exit`` on stop.

A class takes the same decorator as a function (``@endpoint``, ``@function``,
``@task_queue``)::

    @cove.endpoint(gpu="A10G")
    class Classifier:
        @cove.enter()
        def load(self) -> None:
            self.model = load_model()        # before the container is ready: ready means loaded

        @cove.method()
        def predict(self, text: str) -> dict:
            return self.model(text)

        @cove.exit()
        def close(self) -> None:
            ...

    Classifier().predict.remote("hello")

Each ``@method`` deploys as a deployment of the class's kind named
``<class>-<method>`` (``classifier-predict``), so it scales, is called and is
shown like a function. In each of its containers the runner makes one instance,
runs the ``@enter`` methods before it reports ready (a call that arrives meanwhile
waits for them), serves the method bound to that instance, and runs the ``@exit``
methods when the container stops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .._wire.names import check_name
from ..exceptions import ConfigError

ROLE = "__cove_role__"
OWNER = "__cove_owner__"
F = TypeVar("F", bound=Callable[..., Any])


def _role(role: str, fn: Any) -> Any:
    def mark(method: F) -> F:
        if not callable(method):
            raise ConfigError(f"@cove.{role} must decorate a method, not {type(method).__name__}")
        setattr(method, ROLE, role)
        return method

    return mark(fn) if fn is not None else mark


def enter(fn: F | None = None) -> Any:
    """Run this method once in each container, before its first call (``@cove.enter()``)."""
    return _role("enter", fn)


def exit(fn: F | None = None) -> Any:
    """Run this method once when a container stops (``@cove.exit()``)."""
    return _role("exit", fn)


def method(fn: F | None = None) -> Any:
    """Deploy this method: it is called with ``.remote``/``.map``/``.spawn`` as a function is (``@cove.method()``)."""
    return _role("method", fn)


class DeployableClass:
    """What a compute decorator returns for a class: one deployable per ``@method``, as attributes."""

    def __init__(self, user_cls: type, make_method: Callable[[Callable[..., Any], str], Any], name: str | None) -> None:
        self.user_cls = user_cls
        self.name = check_name("deployment", name or user_cls.__name__.replace("_", "-").lower())
        self.enters = self._hooks("enter")
        self.exits = self._hooks("exit")
        self.methods: dict[str, Any] = {}
        for attribute, fn in vars(user_cls).items():
            if getattr(fn, ROLE, None) != "method":
                continue
            deployable = make_method(fn, f"{self.name}-{attribute.replace('_', '-').lower()}"[:63])
            setattr(deployable, OWNER, self)
            self.methods[attribute] = deployable
        if not self.methods:
            raise ConfigError(f"class {user_cls.__name__} has no @cove.method: mark the methods to deploy")
        self.__name__ = user_cls.__name__
        self.__qualname__ = user_cls.__qualname__
        self.__module__ = user_cls.__module__
        self.__doc__ = user_cls.__doc__

    def _hooks(self, role: str) -> tuple[str, ...]:
        import inspect

        names = tuple(name for name, fn in vars(self.user_cls).items() if getattr(fn, ROLE, None) == role)
        for name in names:
            if inspect.iscoroutinefunction(getattr(self.user_cls, name)):
                raise ConfigError(f"@cove.{role} method {name!r} must be a plain def, not async def")
        return names

    def __getattr__(self, attribute: str) -> Any:
        methods = self.__dict__.get("methods", {})
        if attribute in methods:
            return methods[attribute]
        raise AttributeError(f"{self.__dict__.get('__name__', 'class')} has no @cove.method {attribute!r}")

    def __call__(self, *args: Any, **kwargs: Any) -> DeployableClass:
        """``Classifier()``: the handle whose methods are called remotely; the containers make their own instance."""
        if args or kwargs:
            raise ConfigError(
                f"{self.__name__}(...) takes no arguments here: every container makes its instance with none"
            )
        return self

    def instance(self) -> Any:
        """A new instance with its ``@enter`` methods run: what one container serves."""
        made = self.user_cls()
        for hook in self.enters:
            getattr(made, hook)()
        return made

    def stop(self, made: Any) -> None:
        """Run the ``@exit`` methods of an instance."""
        for hook in self.exits:
            getattr(made, hook)()

    def __repr__(self) -> str:
        return f"<cove class {self.name!r}: {', '.join(m.name for m in self.methods.values())}>"
