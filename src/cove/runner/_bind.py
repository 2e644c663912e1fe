"""Checking call arguments against a function without importing ``inspect``.

``inspect`` (with ``re``, ``ast``, ``enum``...) costs about 15 ms on every
container start, a quarter of the cold-start budget. A plain function's code
object says all that binding needs; other callables fall back to ``inspect``.
"""

from __future__ import annotations

import types

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08
_CO_COROUTINE = 0x80


class Binder:
    """Raises ``TypeError`` with Python's wording when arguments do not fit ``fn``."""

    def __init__(self, fn: Callable[..., Any], skip: str | None = None) -> None:
        self.fallback: Callable[..., Any] | None = None
        target = fn.__func__ if isinstance(fn, types.MethodType) else fn
        code = getattr(target, "__code__", None)
        if not isinstance(target, types.FunctionType) or code is None:
            self._use_inspect(fn, skip)
            return
        offset = 1 if isinstance(fn, types.MethodType) else 0
        count = code.co_argcount
        names = code.co_varnames[: count + code.co_kwonlyargcount]
        defaults = target.__defaults__ or ()
        positional = list(names[offset:count])
        required_positional = positional[: len(positional) - len(defaults)] if defaults else list(positional)
        self.posonly = set(names[offset : code.co_posonlyargcount])
        kwdefaults = target.__kwdefaults__ or {}
        kwonly = list(names[count:])
        if skip is not None:
            positional = [n for n in positional if n != skip]
            required_positional = [n for n in required_positional if n != skip]
            kwonly = [n for n in kwonly if n != skip]
        self.positional = positional
        self.keywords = set(positional) | set(kwonly)
        self.required = required_positional + [n for n in kwonly if n not in kwdefaults]
        self.varargs = bool(code.co_flags & _CO_VARARGS)
        self.varkw = bool(code.co_flags & _CO_VARKEYWORDS)
        self.is_coroutine = bool(code.co_flags & _CO_COROUTINE)

    def _use_inspect(self, fn: Callable[..., Any], skip: str | None) -> None:
        import inspect

        signature = inspect.signature(fn)
        if skip is not None:
            signature = signature.replace(parameters=[p for p in signature.parameters.values() if p.name != skip])
        self.fallback = signature.bind
        self.is_coroutine = inspect.iscoroutinefunction(fn)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        if self.fallback is not None:
            self.fallback(*args, **kwargs)
            return
        if len(args) > len(self.positional) and not self.varargs:
            raise TypeError("too many positional arguments")
        bound = set(self.positional[: len(args)])
        for name in kwargs:
            if name in self.posonly and not self.varkw:
                raise TypeError(f"{name!r} parameter is positional only, but was passed as a keyword")
            if name in self.keywords and name not in self.posonly:
                if name in bound:
                    raise TypeError(f"multiple values for argument {name!r}")
                bound.add(name)
            elif not self.varkw:
                raise TypeError(f"got an unexpected keyword argument {name!r}")
        for name in self.required:
            if name not in bound:
                raise TypeError(f"missing a required argument: {name!r}")
