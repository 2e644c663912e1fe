"""Checks of a deployment config's fields that are not plain numbers (numbers: ``cove._wire.ranges``).

Each takes what a user or the wire gave and returns the canonical, hashable
form ``DeploymentConfig`` keeps, or raises ``ConfigError`` naming the field.
"""

from __future__ import annotations

from ..exceptions import ConfigError
from .names import check_mount_path, check_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

_ENV_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_ENV_REST = frozenset(_ENV_FIRST + "0123456789")


def check_env(env: Mapping[str, str] | tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Sorted (name, value) pairs of valid environment-variable names and string values."""
    pairs: Any = env.items() if isinstance(env, dict) else env
    try:
        items = tuple(sorted((k, v) for k, v in pairs))
    except (TypeError, ValueError):
        raise ConfigError("env must map names to strings") from None
    for key, value in items:
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigError("env must map names to strings")
        if not key or key[0] not in _ENV_FIRST or not set(key) <= _ENV_REST:
            raise ConfigError(f"environment variable name {key!r} is not valid")
    return items


def check_secrets(secrets: object) -> tuple[str, ...]:
    """Sorted, distinct secret names (``cove secret`` names, or objects with a ``name``)."""
    if isinstance(secrets, str) or not isinstance(secrets, list | tuple):
        raise ConfigError("secrets must be a list of secret names")
    names = tuple(check_name("secret", getattr(s, "name", s)) for s in secrets)
    return tuple(sorted(set(names)))


def check_volumes(volumes: object) -> tuple[tuple[str, str], ...]:
    """``[Volume, ...]``, ``{mount_path: Volume}`` or ``[(mount_path, name), ...]`` → sorted (mount_path, name)."""
    items: list[tuple[object, object]] = []
    if isinstance(volumes, dict):
        for path, volume in volumes.items():
            items.append((path, getattr(volume, "name", volume)))
    elif isinstance(volumes, list | tuple):
        for volume in volumes:
            if isinstance(volume, list | tuple) and len(volume) == 2:
                items.append((volume[0], volume[1]))
            elif hasattr(volume, "name") and hasattr(volume, "mount_path"):
                items.append((volume.mount_path, volume.name))
            else:
                raise ConfigError(f"volumes must list cove.Volume objects, not {volume!r}")
    else:
        raise ConfigError("volumes must be a list of cove.Volume or a dict of mount_path to Volume")
    result = {}
    for path, name in items:
        clean = check_mount_path(path)
        if clean in result:
            raise ConfigError(f"two volumes are mounted at {clean}")
        result[clean] = check_name("volume", name)
    paths = sorted(result)
    for i in range(1, len(paths)):
        if paths[i].startswith(paths[i - 1] + "/"):
            raise ConfigError(f"volume mounts {paths[i - 1]} and {paths[i]} are nested")
    return tuple((path, result[path]) for path in paths)


def check_callback(value: object) -> str | None:
    """The URL's form only; which hosts it may reach is the gateway's decision (its operator's allowance)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")) or len(value) > 2000:
        raise ConfigError(f"callback_url must be an http:// or https:// URL, not {value!r}")
    from urllib.parse import urlsplit

    if any(c.isspace() or not c.isprintable() for c in value):
        raise ConfigError(f"callback_url {value!r} contains spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError as exc:
        raise ConfigError(f"callback_url {value!r} is not a valid URL: {exc}") from None
    if not parts.hostname:
        raise ConfigError(f"callback_url {value!r} names no host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("callback_url may not carry credentials; receivers verify the X-Cove-Signature header")
    return value


def check_inputs(value: object) -> str | None:
    """Keep a schema description as canonical JSON text (hashable, comparable between deploys)."""
    if value is None:
        return None
    import json

    data = json.loads(value) if isinstance(value, str) else value
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "type" in v for v in data.values()):
        raise ConfigError("inputs must describe fields as {name: {type, required, ...}}")
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


PARAMETER_KINDS = ("positional_only", "positional_or_keyword", "var_positional", "keyword_only", "var_keyword")


def check_parameters(value: Any) -> tuple[tuple[str, str, bool], ...]:
    """The handler's signature as (name, kind, required) triples; empty when unknown."""
    try:
        triples = tuple((str(n), str(k), bool(r)) for n, k, r in value)
    except (TypeError, ValueError):
        raise ConfigError("parameters must be [name, kind, required] triples") from None
    for name, kind, _ in triples:
        if kind not in PARAMETER_KINDS or not name.isidentifier():
            raise ConfigError(f"parameter {name!r} of kind {kind!r} is not valid")
    return triples


def check_pool(value: object) -> str | None:
    """The worker pool a deployment is confined to, or None for any worker."""
    if value is None:
        return None
    return check_name("pool", value)


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")


def check_network(value: object) -> tuple[str, ...]:
    """``["10.0.0.5:5432", "db.internal:443"]``: the only TCP destinations a container may reach.

    Names are resolved where the container starts. Empty (the default) means no network at all.
    """
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError("network must be a list of 'host:port' destinations, like ['db.internal:5432']")
    if len(value) > 64:
        raise ConfigError(f"network lists {len(value)} destinations; at most 64 are allowed")
    out: set[str] = set()
    for item in value:
        if not isinstance(item, str) or item.count(":") != 1:
            raise ConfigError(f"network destination {item!r} must be 'host:port' (IPv4 address or DNS name)")
        host, port = item.strip().split(":")
        host = host.lower().rstrip(".")
        if not host or len(host) > 253 or not set(host) <= _HOST_CHARS or host.startswith(("-", ".")):
            raise ConfigError(f"network destination {item!r} has no valid host name or IPv4 address")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"network destination {item!r} needs a port from 1 to 65535")
        out.add(f"{host}:{int(port)}")
    return tuple(sorted(out))
