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

Constructor parameters are class attributes typed ``str``, ``int``, ``float``
or ``bool`` and set with ``cove.parameter()``::

    @cove.function()
    class Model:
        size: str = cove.parameter(default="small")

        @cove.enter()
        def load(self) -> None:
            self.weights = load_weights(self.size)   # set before @enter runs

    Model(size="large").predict.remote(1)          # containers of their own

Each distinct set of values is served by containers of its own, scaled (to
zero too) on their own calls; ``Model()`` and ``Model.predict`` take the
defaults. Values are checked at ``Model(...)``, before anything is sent, and
travel as JSON (``cove._wire.parameters``).

Each ``@method`` deploys as a deployment of the class's kind named
``<class>-<method>`` (``classifier-predict``), so it scales, is called and is
shown like a function. In each of its containers the runner makes one instance,
runs the ``@enter`` methods before it reports ready (a call that arrives meanwhile
waits for them), serves the method bound to that instance, and runs the ``@exit``
methods when the container stops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .._wire.names import check_name
from .._wire.parameters import coerce, resolve, type_name
from ..exceptions import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .._wire.parameters import Declared

ROLE = "__cove_role__"
OWNER = "__cove_owner__"
F = TypeVar("F", bound=Callable[..., Any])
_NO_DEFAULT: Any = object()


class Parameter:
    """What ``cove.parameter()`` leaves on a class until it is decorated: the parameter's default, if any."""

    __slots__ = ("default",)

    def __init__(self, default: Any) -> None:
        self.default = default

    def __repr__(self) -> str:
        return "cove.parameter()" if self.default is _NO_DEFAULT else f"cove.parameter(default={self.default!r})"


def parameter(*, default: Any = _NO_DEFAULT) -> Any:
    """A constructor parameter of a decorated class: ``size: str = cove.parameter(default="small")``.

    Its annotation says its type (str, int, float or bool); without a default
    every ``Model(...)`` must give it. Typed as ``Any`` so that the annotation,
    not this marker, is what a type checker sees on ``self.size``.
    """
    return Parameter(default)


def _declared(user_cls: type) -> tuple[Declared, ...]:
    """The class's parameters in the order written, each typed and its default checked (at decoration)."""
    import inspect  # _hooks imports it for every class anyway

    annotations = inspect.get_annotations(user_cls)
    declared: list[Declared] = []
    for name, value in vars(user_cls).items():
        if not isinstance(value, Parameter):
            continue
        if name not in annotations:
            raise ConfigError(f"parameter {name!r} of {user_cls.__name__} needs a type: {name}: str = cove.parameter()")
        kind = type_name(annotations[name], name)
        if value.default is _NO_DEFAULT:
            declared.append((name, kind, True, None))
        else:
            declared.append((name, kind, False, coerce(name, kind, value.default, f"{user_cls.__name__} default")))
    return tuple(declared)


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

    def __init__(
        self,
        user_cls: type,
        make_method: Callable[[Callable[..., Any], str, tuple[Declared, ...]], Any],
        name: str | None,
    ) -> None:
        self.user_cls = user_cls
        self.name = check_name("deployment", name or user_cls.__name__.replace("_", "-").lower())
        self.parameters = _declared(user_cls)
        self.enters = self._hooks("enter")
        self.exits = self._hooks("exit")
        self.methods: dict[str, Any] = {}
        for attribute, fn in vars(user_cls).items():
            if getattr(fn, ROLE, None) != "method":
                continue
            method_name = f"{self.name}-{attribute.replace('_', '-').lower()}"[:63]
            deployable = make_method(fn, method_name, self.parameters)
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

    def __call__(self, *args: Any, **kwargs: Any) -> DeployableClass | BoundClass:
        """``Model(size="large")``: the handle whose methods call containers made with these parameters.

        The values are checked here, before any call is sent: an unknown, missing or
        wrongly typed one raises ``cove._wire.parameters.ParameterError`` (a
        ``ConfigError`` and a ``TypeError``). A class without parameters is its own handle.
        """
        if args:
            raise ConfigError(f"{self.__name__}(...) takes its parameters by name, not by position")
        values = resolve(self.parameters, kwargs, f"{self.__name__}(...)")
        return BoundClass(self, values) if values else self

    def instance(self, values: Mapping[str, object] | None = None) -> Any:
        """A new instance, its parameters set, with its ``@enter`` methods run: what one container serves."""
        made = self.user_cls()
        for name, value in resolve(self.parameters, values or {}, self.__name__).items():
            setattr(made, name, value)
        for hook in self.enters:
            getattr(made, hook)()
        return made

    def stop(self, made: Any) -> None:
        """Run the ``@exit`` methods of an instance."""
        for hook in self.exits:
            getattr(made, hook)()

    def __repr__(self) -> str:
        return f"<cove class {self.name!r}: {', '.join(m.name for m in self.methods.values())}>"


class BoundClass:
    """``Model(size="large")``: the class's ``@method`` deployables, each sending these parameters with its calls."""

    def __init__(self, owner: DeployableClass, values: dict[str, Any]) -> None:
        self.owner = owner
        self.parameters = values
        self.methods = {attribute: m.with_parameters(values) for attribute, m in owner.methods.items()}

    def __getattr__(self, attribute: str) -> Any:
        methods = self.__dict__.get("methods", {})
        if attribute in methods:
            return methods[attribute]
        raise AttributeError(f"{self.__dict__['owner'].__name__} has no @cove.method {attribute!r}")

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={value!r}" for name, value in self.parameters.items())
        return f"<cove class {self.owner.name!r}({values})>"
