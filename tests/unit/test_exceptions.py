"""One root for what Cove raises to users: ``except cove.exceptions.CoveError`` catches it all."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import cove
from cove.exceptions import ConfigError, Conflict, CoveError, NotFound, RemoteError, ResponseError, TimedOut

SRC = Path(cove.__file__).resolve().parent
# What users import and call: the SDK, typed inputs, and the contracts the SDK reads and writes.
_USER_FACING = ("cove.sdk", "cove.schema", "cove.env", "cove.exceptions", "cove._wire")
_NOT_USER_FACING = {"cove._wire.api"}  # the gateway's response models


def _user_facing_modules() -> list[object]:
    names = ["cove.schema", "cove.env", "cove.exceptions"]
    for package in ("cove.sdk", "cove._wire"):
        module = importlib.import_module(package)
        names += [f"{package}.{m.name}" for m in pkgutil.iter_modules(module.__path__)]
    return [importlib.import_module(name) for name in names if name not in _NOT_USER_FACING]


def test_every_error_class_users_meet_derives_from_the_root() -> None:
    found = []
    for module in _user_facing_modules():
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith(_USER_FACING):
                found.append(value)
                assert issubclass(value, CoveError), f"{value.__module__}.{value.__qualname__}"
    assert {ConfigError, NotFound, Conflict, ResponseError, RemoteError, TimedOut} <= set(found)


def _raised_class(namespace: dict[str, object], name: str) -> object:
    """The class a ``raise name(...)`` raises: ``name`` itself, or what a factory function says it returns."""
    value = namespace.get(name)
    if inspect.isfunction(value):
        returned = inspect.signature(value).return_annotation
        return namespace.get(returned) if isinstance(returned, str) else returned
    return value


def test_the_sdk_raises_only_the_root_s_errors_or_python_s_own() -> None:
    """A ``raise X(...)`` in user-facing code names a built-in exception (misuse: ``TypeError``...) or a CoveError.

    Waiting too long is not misuse: it raises ``TimedOut``, a ``TimeoutError`` under the root.
    """
    unknown = []
    for module in _user_facing_modules():
        path = Path(str(getattr(module, "__file__", "")))
        namespace = vars(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                name = node.exc.func.id
                if name not in namespace and hasattr(builtins, name) and name != "TimeoutError":
                    continue
                raised = _raised_class(namespace, name)
                if not (isinstance(raised, type) and issubclass(raised, CoveError)):
                    unknown.append(f"{path.relative_to(SRC)}:{node.lineno}: {name}")
    assert unknown == []


def test_the_errors_keep_their_built_in_bases() -> None:
    assert issubclass(ConfigError, ValueError)
    assert issubclass(NotFound, LookupError)
    assert issubclass(Conflict, ValueError)
    assert issubclass(ResponseError, RuntimeError)
    assert issubclass(RemoteError, RuntimeError)
    assert issubclass(TimedOut, TimeoutError)
    error = ResponseError(404, "NotFound", "no deployment 'x'")
    assert (error.status, error.type, error.message, str(error)) == (404, "NotFound", "no deployment 'x'", str(error))


def test_the_public_names_are_the_root_s() -> None:
    assert cove.ConfigError is ConfigError
    assert cove.RemoteError is RemoteError


def test_not_found_and_conflict_are_defined_once() -> None:
    pattern = re.compile(r"^class (NotFound|Conflict)\b", re.MULTILINE)
    where = sorted(
        f"{path.relative_to(SRC)}: {match}" for path in SRC.rglob("*.py") for match in pattern.findall(path.read_text())
    )
    assert where == ["exceptions.py: Conflict", "exceptions.py: NotFound"]
