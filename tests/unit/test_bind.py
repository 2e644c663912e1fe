"""The runner's argument binder agrees with ``inspect.signature(...).bind`` on every parameter kind."""

from __future__ import annotations

import inspect
import itertools
from typing import Any

import pytest

from cove.runner._bind import Binder


def plain(a, b=2): ...  # type: ignore[no-untyped-def]
def posonly(a, /, b, *, c, d=4): ...  # type: ignore[no-untyped-def]
def star(a, *args, k=1, **kw): ...  # type: ignore[no-untyped-def]
def nothing(): ...  # type: ignore[no-untyped-def]
async def coro(x): ...  # type: ignore[no-untyped-def]


class Thing:
    def method(self, a, b=1): ...  # type: ignore[no-untyped-def]

    def __call__(self, q): ...  # type: ignore[no-untyped-def]


FUNCTIONS = [plain, posonly, star, nothing, coro, Thing().method, Thing()]
ARGS: list[tuple[Any, ...]] = [(), (1,), (1, 2), (1, 2, 3)]
KWARGS: list[dict[str, Any]] = [{}, {"a": 1}, {"b": 2}, {"c": 3}, {"a": 1, "b": 2}, {"zz": 0}, {"q": 1}, {"k": 2}]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: getattr(f, "__name__", type(f).__name__))
def test_accepts_and_rejects_exactly_like_inspect(fn: Any) -> None:
    binder = Binder(fn)
    signature = inspect.signature(fn)
    for args, kwargs in itertools.product(ARGS, KWARGS):
        try:
            signature.bind(*args, **kwargs)
            expected = None
        except TypeError as exc:
            expected = exc
        try:
            binder(*args, **kwargs)
            got = None
        except TypeError as exc:
            got = exc
        assert (got is None) == (expected is None), (fn, args, kwargs, expected, got)


def test_messages_name_the_argument_and_context_is_skipped() -> None:
    def handler(a, b, context=None): ...  # type: ignore[no-untyped-def]

    binder = Binder(handler, skip="context")
    with pytest.raises(TypeError, match="missing a required argument: 'b'"):
        binder(a=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'c'"):
        binder(a=1, b=2, c=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'context'"):
        binder(a=1, b=2, context=3)
    binder(a=1, b=2)
    assert Binder(coro).is_coroutine and not Binder(plain).is_coroutine
