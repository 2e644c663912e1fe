"""One typed configuration for everything a compute decorator accepts.

Every default a user relies on lives here, once. The SDK builds a
``DeploymentConfig`` from decorator arguments, the gateway stores its dict form
and the scheduler reads it back, so no part keeps its own copy of a default.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any, Literal

Kind = Literal["endpoint", "function", "task_queue", "asgi"]

_MEMORY_UNITS: Mapping[str, int] = {
    "": 1,
    "mi": 1,
    "mib": 1,
    "m": 1,
    "mb": 1,
    "gi": 1024,
    "gib": 1024,
    "g": 1024,
    "gb": 1024,
    "ki": 0,
    "ti": 1024 * 1024,
}


class ConfigError(ValueError):
    """A decorator or deployment argument that cannot be used as given."""


def parse_cpu(value: float | int | str) -> int:
    """Return millicores for ``1``, ``0.25`` or ``"500m"``."""
    if isinstance(value, bool):
        raise ConfigError(f"cpu must be a number or a string like '500m', not {value!r}")
    if isinstance(value, str):
        text = value.strip()
        match = re.fullmatch(r"(\d+)m", text)
        if match:
            millis = int(match.group(1))
        else:
            try:
                millis = round(float(text) * 1000)
            except ValueError:
                raise ConfigError(f"cpu {value!r} is not a number of cores or millicores like '500m'") from None
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise ConfigError(f"cpu must be finite, not {value!r}")
        millis = round(value * 1000)
    else:
        raise ConfigError(f"cpu must be a number or a string like '500m', not {type(value).__name__}")
    if millis <= 0:
        raise ConfigError(f"cpu must be more than zero, got {value!r}")
    return millis


def parse_memory(value: int | str) -> int:
    """Return MiB for ``512``, ``"512Mi"``, ``"2Gi"`` or ``"1GB"``."""
    if isinstance(value, bool):
        raise ConfigError(f"memory must be MiB or a string like '2Gi', not {value!r}")
    if isinstance(value, int):
        mib = value
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        if not match or match.group(2).lower() not in _MEMORY_UNITS or match.group(2).lower() == "ki":
            raise ConfigError(f"memory {value!r} is not a size like '512Mi', '2Gi' or '1GB'")
        mib = int(float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()])
    else:
        raise ConfigError(f"memory must be MiB or a string like '2Gi', not {type(value).__name__}")
    if mib <= 0:
        raise ConfigError(f"memory must be more than zero, got {value!r}")
    return mib


@dataclasses.dataclass(frozen=True)
class QueueDepthAutoscaler:
    """Sets the container count from the work in flight.

    ``desired = ceil(in_flight / tasks_per_container)`` clamped to
    ``[min_containers, max_containers]``.
    """

    min_containers: int = 0
    max_containers: int = 4
    tasks_per_container: int = 1

    def __post_init__(self) -> None:
        for field in ("min_containers", "max_containers", "tasks_per_container"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{field} must be a non-negative integer, got {value!r}")
        if self.max_containers < 1:
            raise ConfigError("max_containers must be at least 1")
        if self.tasks_per_container < 1:
            raise ConfigError("tasks_per_container must be at least 1")
        if self.min_containers > self.max_containers:
            raise ConfigError(f"min_containers ({self.min_containers}) exceeds max_containers ({self.max_containers})")

    def desired(self, in_flight: int) -> int:
        """How many containers the given number of in-flight inputs asks for."""
        wanted = math.ceil(max(in_flight, 0) / self.tasks_per_container)
        return max(self.min_containers, min(self.max_containers, wanted))


@dataclasses.dataclass(frozen=True)
class DeploymentConfig:
    """Resources, scaling and limits of one deployment, with the documented defaults."""

    kind: Kind = "endpoint"
    cpu_millis: int = 1000
    memory_mib: int = 512
    keep_warm_seconds: float = 180.0
    autoscaler: QueueDepthAutoscaler = QueueDepthAutoscaler()
    concurrent_requests: int = 1
    workers: int = 1
    max_pending_tasks: int = 1000
    timeout: float = 180.0
    retries: int = 0
    authorized: bool = True
    env: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.concurrent_requests < 1:
            raise ConfigError("concurrent_requests must be at least 1")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.max_pending_tasks < 1:
            raise ConfigError("max_pending_tasks must be at least 1")
        if self.keep_warm_seconds < 0 and self.keep_warm_seconds != -1:
            raise ConfigError("keep_warm_seconds must be >= 0, or -1 for never")
        if self.timeout <= 0 and self.timeout != -1:
            raise ConfigError("timeout must be > 0, or -1 for none")
        for key, _ in self.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ConfigError(f"environment variable name {key!r} is not valid")

    @classmethod
    def build(
        cls,
        kind: Kind = "endpoint",
        *,
        cpu: float | str | None = None,
        memory: int | str | None = None,
        keep_warm_seconds: float | None = None,
        autoscaler: QueueDepthAutoscaler | None = None,
        concurrent_requests: int = 1,
        workers: int = 1,
        max_pending_tasks: int = 1000,
        timeout: float | None = None,
        retries: int | None = None,
        authorized: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> DeploymentConfig:
        """Apply the per-kind defaults of API.md to what the user gave."""
        default_cpu = 0.25 if kind == "function" else 1.0
        return cls(
            kind=kind,
            cpu_millis=parse_cpu(default_cpu if cpu is None else cpu),
            memory_mib=parse_memory(512 if memory is None else memory),
            keep_warm_seconds=float(
                keep_warm_seconds if keep_warm_seconds is not None else (10 if kind == "task_queue" else 180)
            ),
            autoscaler=autoscaler or QueueDepthAutoscaler(),
            concurrent_requests=concurrent_requests,
            workers=workers,
            max_pending_tasks=max_pending_tasks,
            timeout=float(timeout if timeout is not None else (180 if kind in ("endpoint", "asgi") else 3600)),
            retries=retries if retries is not None else (0 if kind in ("endpoint", "asgi") else 3),
            authorized=authorized,
            env=tuple(sorted((env or {}).items())),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored with a deployment."""
        data = dataclasses.asdict(self)
        data["env"] = dict(self.env)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentConfig:
        """Validate and rebuild a config that came over the wire or from the store."""
        if not isinstance(data, Mapping):
            raise ConfigError("config must be an object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown config fields: {', '.join(sorted(unknown))}")
        values = dict(data)
        try:
            if "autoscaler" in values:
                auto = values["autoscaler"]
                if not isinstance(auto, Mapping):
                    raise ConfigError("autoscaler must be an object")
                values["autoscaler"] = QueueDepthAutoscaler(**auto)
            if "env" in values:
                env = values["env"]
                if not isinstance(env, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in env.items()
                ):
                    raise ConfigError("env must map names to strings")
                values["env"] = tuple(sorted(env.items()))
            if "kind" in values and values["kind"] not in ("endpoint", "function", "task_queue", "asgi"):
                raise ConfigError(f"unknown kind {values['kind']!r}")
            _check_types(values)
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None


def _check_types(values: Mapping[str, Any]) -> None:
    numeric = ("keep_warm_seconds", "timeout")
    integral = ("cpu_millis", "memory_mib", "concurrent_requests", "workers", "max_pending_tasks", "retries")
    for name in numeric:
        if name in values and (isinstance(values[name], bool) or not isinstance(values[name], int | float)):
            raise ConfigError(f"{name} must be a number")
    for name in integral:
        if name in values and (isinstance(values[name], bool) or not isinstance(values[name], int)):
            raise ConfigError(f"{name} must be an integer")
    for name in ("cpu_millis", "memory_mib"):
        if name in values and values[name] <= 0:
            raise ConfigError(f"{name} must be more than zero")
    if "authorized" in values and not isinstance(values["authorized"], bool):
        raise ConfigError("authorized must be true or false")
