"""An image spec: the canonical description of a container environment, its checks and its id.

The SDK's ``Image`` builds a spec, the gateway validates one that arrives and
the builder hashes it, all with these functions, so a spec accepted on one
side is accepted on the other and hashes to the same id. The id is the hash of
the canonical spec, so identical specs share one built environment.
"""

from __future__ import annotations

from ..exceptions import ConfigError
from .requirements import check_requirement

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

SPEC_VERSION = 1
# What an image holds, in the order its record lists them.
FIELDS = ("base_image", "commands", "env_vars", "python_env", "python_packages", "python_version", "system_packages")
# The fields that an image from an existing environment (``python_env``) cannot have: it is used as is.
_BUILT_FIELDS = ("python_version", "python_packages", "system_packages", "commands", "base_image")


def normalise_python(version: str | None) -> str | None:
    """``"3.11"`` for ``"3.11"`` or ``"python3.11"``; None leaves the builder's choice."""
    if version is None:
        return None
    text = str(version).strip().lower().removeprefix("python")
    major, dot, minor = text.partition(".")
    if major != "3" or not dot or not minor.isdigit() or len(minor) > 2:
        raise ConfigError(f"python_version {version!r} must look like '3.11' or 'python3.11'")
    return text


def check_python_env(path: str | None) -> str | None:
    """An absolute, normalised folder path (it is looked up on the worker, not here)."""
    if path is None:
        return None
    import os.path

    if not isinstance(path, str) or not path.startswith("/") or "\0" in path or len(path) > 1024:
        raise ConfigError(f"python_env {path!r} must be an absolute path to an environment on the workers")
    clean = os.path.normpath(path)
    if clean != path.rstrip("/") or any(part == ".." for part in path.split("/")):
        raise ConfigError(f"python_env {path!r} must be a normalised path (without '.', '..' or '//')")
    if clean == "/":
        raise ConfigError("python_env must name an environment's folder, not /")
    return clean


def check_packages(value: Sequence[str]) -> tuple[str, ...]:
    """Requirement strings, each one checked (``cove._wire.requirements``) and stripped."""
    if isinstance(value, str) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ConfigError("python_packages must be a list of requirement strings")
    for item in value:
        check_requirement(item)
    return tuple(item.strip() for item in value)


def image_fields(
    *,
    python_version: str | None = None,
    python_packages: Sequence[str] = (),
    system_packages: Sequence[str] = (),
    commands: Sequence[str] = (),
    env_vars: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    base_image: str | None = None,
    python_env: str | None = None,
) -> dict[str, Any]:
    """The checked, canonical value of each field in ``FIELDS``, or a ``ConfigError`` naming the problem."""
    pairs: Any = env_vars.items() if isinstance(env_vars, dict) else env_vars
    fields: dict[str, Any] = {
        "base_image": base_image,
        "commands": tuple(commands),
        "env_vars": tuple(sorted((str(k), str(v)) for k, v in pairs)),
        "python_env": check_python_env(python_env),
        "python_packages": check_packages(python_packages),
        "python_version": normalise_python(python_version),
        "system_packages": tuple(system_packages),
    }
    if fields["python_env"] is not None:
        given = [name for name in _BUILT_FIELDS if fields[name]]
        if given:
            raise ConfigError(
                f"an image from an existing environment ({fields['python_env']}) is used as is; "
                f"it cannot also have {', '.join(given)}"
            )
    return fields


def canonical_spec(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-ready spec that the id hashes (``python_env`` only when set: ids of built images stay stable)."""
    spec: dict[str, Any] = {
        "spec_version": SPEC_VERSION,
        "python_version": fields["python_version"],
        "python_packages": list(fields["python_packages"]),
        "system_packages": list(fields["system_packages"]),
        "commands": list(fields["commands"]),
        "env_vars": dict(fields["env_vars"]),
        "base_image": fields["base_image"],
    }
    if fields["python_env"] is not None:
        spec["python_env"] = fields["python_env"]
    return spec


def image_id(spec: Mapping[str, Any]) -> str:
    """Content hash of a canonical image spec (sorted keys, no whitespace)."""
    import hashlib
    import json

    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def validate_spec(spec: Any) -> dict[str, Any]:
    """An image spec that arrived from outside, checked and canonical; a ``ConfigError`` names any problem."""
    if not isinstance(spec, dict):
        raise ConfigError("image spec must be an object")
    unknown = set(spec) - {"spec_version", *FIELDS}
    if unknown:
        raise ConfigError(f"unknown image spec fields: {', '.join(sorted(unknown))}")
    if spec.get("spec_version", SPEC_VERSION) != SPEC_VERSION:
        raise ConfigError(f"image spec_version {spec.get('spec_version')!r} is not supported (expected {SPEC_VERSION})")
    for key in ("python_version", "base_image", "python_env"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise ConfigError(f"{key} must be a string or null")
    try:
        fields = image_fields(
            python_version=spec.get("python_version"),
            python_packages=_string_list(spec, "python_packages"),
            system_packages=_string_list(spec, "system_packages"),
            commands=_string_list(spec, "commands"),
            env_vars=_string_map(spec, "env_vars"),
            base_image=spec.get("base_image"),
            python_env=spec.get("python_env"),
        )
    except (TypeError, AttributeError) as exc:
        raise ConfigError(f"image spec is malformed: {exc}") from None
    for requirement in fields["python_packages"]:
        if requirement.startswith("-") or "\n" in requirement:
            raise ConfigError(f"python package {requirement!r} is not a requirement (options are not allowed)")
    return canonical_spec(fields)


def _string_list(spec: Mapping[str, Any], key: str) -> list[str]:
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of strings")
    return value


def _string_map(spec: Mapping[str, Any], key: str) -> dict[str, str]:
    value = spec.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{key} must map names to strings")
    return dict(value)
