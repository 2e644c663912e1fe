"""Constructor parameters of a class: their declared types, one call's values, and how the values travel.

``size: str = cove.parameter(default="small")`` on a decorated class makes
``Model(size="large")`` a handle of its own: each distinct set of values is
served by containers of its own (a pool keyed by the deployment and the digest
of the values, so it scales, and scales to zero, apart from the others), and
those containers' ``@enter`` methods see the values on ``self``.

Values are JSON scalars (str, int, float, bool), so the gateway reads, checks
and compares them without unpickling anything:

- a pickled call (``.remote``, ``.spawn``, ``.map``, ``.put``) carries them under
  ``ENVELOPE_KEY`` in its payload envelope (``cove._wire.payload``): a durable
  task keeps them in its stored arguments and is routed to the same pool after a
  gateway restart, with no column of its own;
- an endpoint call carries them as canonical JSON in the ``HEADER`` request header;
- a container gets them in its start order (``ContainerSpec.class_parameters``),
  which its worker hands to the runner as the variable ``ENV``.

A call that names no values takes the declared defaults, so ``Model().predict``,
``Model.predict`` and a plain ``POST /endpoint/model-predict`` share one pool.
Standard library only: the runner imports it in every container.
"""

from __future__ import annotations

import json

from ..exceptions import ConfigError
from .payload import MAGIC, unwrap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TypeAlias

    Value: TypeAlias = str | int | float | bool
    Declared: TypeAlias = tuple[str, str, bool, Value | None]  # (name, type name, required, default)

TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
HEADER = "X-Cove-Parameters"
ENVELOPE_KEY = "parameters"
ENV = "COVE_PARAMETERS"
MAX_JSON_BYTES = 4096  # one set of values, as JSON: a bound on what a header or an envelope may make a pool of


class ParameterError(ConfigError, TypeError):
    """Constructor parameters that do not fit the class: unknown, missing, or of the wrong type."""


def type_name(annotation: object, name: str) -> str:
    """The wire name of a parameter's annotation (a type, or its name under ``from __future__ import annotations``)."""
    if isinstance(annotation, str):
        candidate: str | None = annotation
    else:
        candidate = next((key for key, value in TYPES.items() if value is annotation), None)
    if candidate not in TYPES:
        shown = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
        raise ConfigError(f"parameter {name!r} is annotated {shown!r}: a parameter is a str, int, float or bool")
    return candidate


def coerce(name: str, kind: str, value: object, who: str) -> Value:
    """``value`` as a value of the parameter, or a ``ParameterError`` that names it (an int passes for a float)."""
    if kind == "float" and type(value) is int:
        value = float(value)
    if type(value) is not TYPES[kind]:
        raise ParameterError(f"{who}: parameter {name!r} must be a {kind}, not {type(value).__name__} ({value!r})")
    if kind == "float" and not (-float("inf") < value < float("inf")):  # type: ignore[operator]
        raise ParameterError(f"{who}: parameter {name!r} must be a finite float, not {value!r}")
    return value  # type: ignore[return-value]


def check_declared(value: Any) -> tuple[Declared, ...]:
    """Declared parameters as stored with a deployment: (name, type, required, default) in declared order."""
    try:
        quads = tuple((str(n), str(k), bool(r), d) for n, k, r, d in value)
    except (TypeError, ValueError):
        raise ConfigError("class_parameters must be [name, type, required, default] entries") from None
    seen: set[str] = set()
    for name, kind, required, default in quads:
        if not name.isidentifier() or name in seen or kind not in TYPES:
            raise ConfigError(f"class parameter {name!r} of type {kind!r} is not valid")
        seen.add(name)
        if not required:
            coerce(name, kind, default, "class_parameters")
    return tuple((n, k, r, None if r else coerce(n, k, d, "class_parameters")) for n, k, r, d in quads)


def resolve(declared: tuple[Declared, ...], given: Mapping[str, object], who: str) -> dict[str, Value]:
    """One call's values: ``given`` checked against ``declared``, defaults filled in, sorted by name."""
    known = {entry[0] for entry in declared}
    unknown = sorted(set(given) - known)
    if unknown:
        takes = f"its parameters are {', '.join(sorted(known))}" if known else "it takes none"
        raise ParameterError(f"{who} has no parameter {', '.join(map(repr, unknown))}: {takes}")
    values: dict[str, Value] = {}
    missing = []
    for name, kind, required, default in declared:
        if name in given:
            values[name] = coerce(name, kind, given[name], who)
        elif required:
            missing.append(name)
        else:
            assert default is not None
            values[name] = default
    if missing:
        raise ParameterError(f"{who} needs a value for parameter {', '.join(map(repr, missing))}: it has no default")
    return dict(sorted(values.items()))


def dumps(values: Mapping[str, Value]) -> str:
    """The canonical JSON of a set of values: the same set always gives the same text (and pool)."""
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":"), allow_nan=False)


def loads(text: str | bytes, who: str) -> dict[str, object]:
    """A set of values from JSON (a header, the container's variable): an object, not checked against a class."""
    if len(text) > MAX_JSON_BYTES:
        raise ParameterError(f"{who}: the parameters are over {MAX_JSON_BYTES} bytes of JSON")
    try:
        data = json.loads(text)
    except ValueError:
        raise ParameterError(f"{who}: the parameters are not JSON") from None
    if not isinstance(data, dict):
        raise ParameterError(f"{who}: the parameters must be a JSON object of names and values")
    return data


def digest(values: Mapping[str, Value]) -> str:
    """A short name of a set of values, for pool keys and logs."""
    import hashlib

    return hashlib.sha256(dumps(values).encode()).hexdigest()[:16]


def pool_key(deployment_id: str, values: Mapping[str, Value]) -> str:
    """What the scheduler keys containers and queued work by: the deployment, and the values when there are any."""
    return f"{deployment_id}#{digest(values)}" if values else deployment_id


def label(values: Mapping[str, Value]) -> str:
    """The values as people read them in ``cove ps``: ``size="large", n=2``."""
    return ", ".join(f"{name}={json.dumps(value)}" for name, value in sorted(values.items()))


def of_payload(declared: tuple[Declared, ...], payload: bytes, who: str) -> dict[str, Value]:
    """The values a pickled call carries in its envelope (none: the defaults), checked against ``declared``."""
    if not payload.startswith(MAGIC):
        return resolve(declared, {}, who)
    header, _ = unwrap(payload)
    given = header.get(ENVELOPE_KEY, {})
    if not isinstance(given, dict) or len(dumps_unchecked(given)) > MAX_JSON_BYTES:
        raise ParameterError(f"{who}: the call's parameters must be a small JSON object")
    return resolve(declared, given, who)


def dumps_unchecked(values: Mapping[str, object]) -> str:
    """JSON of values not yet checked (for a size bound); anything JSON cannot hold counts as too big."""
    try:
        return json.dumps(dict(values), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return "x" * (MAX_JSON_BYTES + 1)


def container_env(values: Mapping[str, Value]) -> dict[str, str]:
    """The variable that hands a container's values to its runner (none without values)."""
    return {ENV: dumps(values)} if values else {}


def of_container(environ: Mapping[str, str]) -> dict[str, object]:
    """The values a container was started with, as its worker set them (already checked by the gateway)."""
    text = environ.get(ENV)
    return loads(text, "the container's parameters") if text else {}
