"""The base of every JSON request body the gateway accepts.

A field the model does not know is refused with 422 instead of being dropped:
a misspelt option (``max_containres``) silently ignored would leave its
default in force while the caller believes it set something. Values are
strict for the same reason: ``false`` is not a number and ``"5"`` is not an
integer. JSON has one kind of number, though, so ``5.0`` is the integer 5,
as JSON Schema (and so the published document) has it.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class RequestBody(BaseModel):
    """A request body model: unknown fields and values of another JSON type are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fixed = dict(data)
        for name, field in cls.model_fields.items():
            value = data.get(name)
            if isinstance(value, float) and value.is_integer() and _takes_int_only(field.annotation):
                fixed[name] = int(value)
        return fixed


def _takes_int_only(annotation: Any) -> bool:
    """``int``, or a union with ``int`` and no ``float`` (``int | None``, ``int | str``)."""
    if annotation is int:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        return int in options and float not in options
    return False
