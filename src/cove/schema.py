"""Typed inputs: ``inputs=MySchema`` on ``@endpoint`` and ``@task_queue``.

The gateway validates each request body against the schema's description
(422 naming the field and the reason) before any container sees it, and the
handler receives an instance with attribute access::

    class Prompt(schema.Schema):
        text = schema.String(max_length=2000)
        temperature = schema.Float(default=0.7, minimum=0, maximum=2)

    @endpoint(inputs=Prompt)
    def generate(prompt: Prompt) -> dict: ...

Stdlib only: containers import it before the user's code runs.
"""

from __future__ import annotations

import base64

from .exceptions import CoveError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar

_MISSING: Any = object()


class SchemaError(CoveError, ValueError):
    """A value that does not fit its field; the message names the field."""


class Field:
    """One field; subclasses say which JSON values fit."""

    type_name = "any"

    def __init__(self, *, default: Any = _MISSING, description: str = "") -> None:
        self.default = default
        self.description = description
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def describe(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type_name, "required": self.default is _MISSING}
        if self.default is not _MISSING:
            data["default"] = self.default
        return data

    def convert(self, value: Any) -> Any:
        return value


class String(Field):
    type_name = "string"

    def __init__(self, *, max_length: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.max_length = max_length

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "max_length": self.max_length}


class Integer(Field):
    type_name = "integer"

    def __init__(self, *, minimum: int | None = None, maximum: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.minimum, self.maximum = minimum, maximum

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "minimum": self.minimum, "maximum": self.maximum}


class Float(Integer):
    type_name = "float"


class Boolean(Field):
    type_name = "boolean"


class JSON(Field):
    type_name = "json"


class File(Field):
    """A file sent as ``{"name": ..., "data": <base64>}``; the handler gets ``.name`` and ``.content`` bytes."""

    type_name = "file"

    def __init__(self, *, max_bytes: int = 16 * 1024 * 1024, **kw: Any) -> None:
        super().__init__(**kw)
        self.max_bytes = max_bytes

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "max_bytes": self.max_bytes}

    def convert(self, value: Any) -> Any:
        return UploadedFile(value["name"], base64.b64decode(value["data"]))


class UploadedFile:
    __slots__ = ("content", "name")

    def __init__(self, name: str, content: bytes) -> None:
        self.name = name
        self.content = content

    def __repr__(self) -> str:
        return f"UploadedFile({self.name!r}, {len(self.content)} bytes)"


class Schema:
    """Declare fields as class attributes; instances give attribute access to validated values."""

    _fields: ClassVar[dict[str, Field]] = {}

    def __init_subclass__(cls) -> None:
        fields = dict(getattr(cls, "_fields", {}))
        fields.update({k: v for k, v in vars(cls).items() if isinstance(v, Field)})
        cls._fields = fields

    def __init__(self, **values: Any) -> None:
        for name, field in self._fields.items():
            if name in values:
                object.__setattr__(self, name, field.convert(values[name]))
            else:
                object.__setattr__(self, name, field.default)

    @classmethod
    def describe(cls) -> dict[str, dict[str, Any]]:
        """The JSON description the gateway validates bodies with."""
        return {name: field.describe() for name, field in cls._fields.items()}

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._fields}

    def to_json(self) -> dict[str, Any]:
        """The instance as a request body carries it: a file as ``{"name", "data"}``, unset fields left out."""
        return {
            name: _encoded(getattr(self, name))
            for name in self._fields
            if getattr(self, name, _MISSING) is not _MISSING
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self._fields)})"


def _encoded(value: Any) -> Any:
    if isinstance(value, UploadedFile):
        return {"name": value.name, "data": base64.b64encode(value.content).decode()}
    return value


def call_body(schema: type[Schema], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of a call to a handler declared with ``inputs=schema``.

    The call passes one instance of the schema (``queue.put(Input(...))``) or
    its fields by name (``queue.put(url=...)``); anything else is a ``TypeError``.
    """
    if not args:
        return {name: _encoded(value) for name, value in kwargs.items()}
    if len(args) == 1 and not kwargs and isinstance(args[0], schema):
        return args[0].to_json()
    given = ", ".join(type(a).__name__ for a in args)
    raise TypeError(f"takes one {schema.__name__} or its fields by name, not positional {given}")


def validate(description: dict[str, dict[str, Any]], body: Any) -> dict[str, Any]:
    """Check a request body against a schema description; raise ``SchemaError`` naming the field."""
    if not isinstance(body, dict):
        raise SchemaError(f"the body must be a JSON object, not {type(body).__name__}")
    unknown = sorted(set(body) - set(description))
    if unknown:
        raise SchemaError(f"field {unknown[0]!r} is not part of the schema")
    for name, spec in description.items():
        if name not in body:
            if spec.get("required"):
                raise SchemaError(f"field {name!r} is required")
            continue
        _check(name, spec, body[name])
    return body


def _check(name: str, spec: dict[str, Any], value: Any) -> None:
    kind = spec.get("type")
    if kind == "string":
        if not isinstance(value, str):
            raise SchemaError(f"field {name!r} must be a string")
        if spec.get("max_length") is not None and len(value) > spec["max_length"]:
            raise SchemaError(f"field {name!r} is longer than {spec['max_length']} characters")
    elif kind in ("integer", "float"):
        ok = isinstance(value, int) if kind == "integer" else isinstance(value, int | float)
        if isinstance(value, bool) or not ok:
            raise SchemaError(f"field {name!r} must be {'an integer' if kind == 'integer' else 'a number'}")
        if spec.get("minimum") is not None and value < spec["minimum"]:
            raise SchemaError(f"field {name!r} must be at least {spec['minimum']}")
        if spec.get("maximum") is not None and value > spec["maximum"]:
            raise SchemaError(f"field {name!r} must be at most {spec['maximum']}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise SchemaError(f"field {name!r} must be true or false")
    elif kind == "file":
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("name"), str)
            or not isinstance(value.get("data"), str)
        ):
            raise SchemaError(f"field {name!r} must be {{'name': str, 'data': base64 str}}")
        try:
            size = len(base64.b64decode(value["data"], validate=True))
        except ValueError:
            raise SchemaError(f"field {name!r} data is not base64") from None
        if size > spec.get("max_bytes", 16 * 1024 * 1024):
            raise SchemaError(f"field {name!r} is larger than {spec['max_bytes']} bytes")
