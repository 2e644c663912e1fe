"""Per-workspace limits on containers, cpu, GPUs and disk, and the checks against them.

A compute quota is checked twice: when a deployment is registered (a floor of
``min_containers`` that can never fit is refused at once) and whenever the
scheduler is about to start a container (a start that would pass the limit
waits, with the reason shown in ``cove ps``). Disk limits are checked when an
upload would add bytes. ``None`` means no limit.

Every workspace without a quota of its own gets ``default_quota()``: the
shipped defaults below, which an operator changes with ``COVE_DEFAULT_QUOTA``
(a JSON object with the same fields; a field set to null has no limit).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._wire.config import DeploymentConfig
from ..exceptions import ConfigError

GiB = 1 << 30
DEFAULT_QUOTA_ENV = "COVE_DEFAULT_QUOTA"


def _limit(default: int | None, maximum: int, unit: str) -> Any:
    """One limit's declaration: the default every workspace gets, and the largest value it accepts."""
    return dataclasses.field(default=None, metadata={"default": default, "maximum": maximum, "unit": unit})


@dataclasses.dataclass(frozen=True)
class Quota:
    """Limits for one workspace; a field left ``None`` is unlimited."""

    max_containers: int | None = _limit(100, 100_000, "containers")
    max_cpu_millis: int | None = _limit(64_000, 100_000_000, "millicores")
    max_gpus: int | None = _limit(8, 100_000, "GPUs")
    max_volume_bytes: int | None = _limit(100 * GiB, 1 << 50, "bytes")
    max_code_bytes: int | None = _limit(10 * GiB, 1 << 50, "bytes")
    max_blob_bytes: int | None = _limit(50 * GiB, 1 << 50, "bytes")

    def to_dict(self) -> dict[str, int | None]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quota:
        """From trusted data (a store row's fields): missing fields have no limit."""
        return cls(**{f.name: data.get(f.name) for f in dataclasses.fields(cls)})

    @classmethod
    def checked(cls, data: object, base: Quota | None = None) -> Quota:
        """From untrusted data: every field known and in range; fields left out keep ``base``'s value."""
        if not isinstance(data, dict):
            raise ConfigError("a quota must be an object of limits")
        unknown = sorted(set(data) - set(LIMITS))
        if unknown:
            raise ConfigError(f"unknown quota fields: {', '.join(unknown)} (known: {', '.join(LIMITS)})")
        values = (base or cls()).to_dict()
        for name, value in data.items():
            values[name] = None if value is None else _in_range(name, value)
        return cls(**values)

    @property
    def unlimited(self) -> bool:
        return all(value is None for value in dataclasses.astuple(self))


def _in_range(name: str, value: object) -> int:
    maximum = LIMITS[name]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise ConfigError(f"{name} must be an integer from 0 to {maximum}, or null for no limit; got {value!r}")
    return value


# The largest value each limit accepts (its column and every sum over it stay in range).
LIMITS: Mapping[str, int] = MappingProxyType({f.name: f.metadata["maximum"] for f in dataclasses.fields(Quota)})
SHIPPED_DEFAULT = Quota(**{f.name: f.metadata["default"] for f in dataclasses.fields(Quota)})


@functools.cache
def default_quota() -> Quota:
    """The quota of a workspace without one of its own: the shipped one, changed by ``COVE_DEFAULT_QUOTA``."""
    text = os.environ.get(DEFAULT_QUOTA_ENV, "").strip()
    if not text:
        return SHIPPED_DEFAULT
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigError(f"{DEFAULT_QUOTA_ENV} must be a JSON object such as '{{\"max_containers\": 20}}'") from None
    try:
        return Quota.checked(data, SHIPPED_DEFAULT)
    except ConfigError as exc:
        raise ConfigError(f"{DEFAULT_QUOTA_ENV}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class Usage:
    """What a workspace's live containers hold now."""

    containers: int = 0
    cpu_millis: int = 0
    gpus: int = 0

    def plus(self, containers: int, cpu_millis: int, gpus: int) -> Usage:
        return Usage(self.containers + containers, self.cpu_millis + cpu_millis, self.gpus + gpus)


def gpus_of(config: DeploymentConfig) -> int:
    """GPUs one container of ``config`` occupies: its whole GPUs, or 1 for a fraction.

    A fraction counts as one because it keeps a GPU from being handed out whole;
    the quota bounds how many cards a workspace can tie up.
    """
    return config.gpu_count if config.gpu else 0


def exceeded(quota: Quota, usage: Usage) -> str | None:
    """Which limit ``usage`` passes, in words, or None when it fits."""
    if quota.max_containers is not None and usage.containers > quota.max_containers:
        return f"{usage.containers} containers, quota allows {quota.max_containers}"
    if quota.max_cpu_millis is not None and usage.cpu_millis > quota.max_cpu_millis:
        return f"{usage.cpu_millis}m cpu, quota allows {quota.max_cpu_millis}m"
    if quota.max_gpus is not None and usage.gpus > quota.max_gpus:
        return f"{usage.gpus} GPUs, quota allows {quota.max_gpus}"
    return None


def check_start(quota: Quota, usage: Usage, config: DeploymentConfig) -> str | None:
    """Why one more container of ``config`` may not start now, or None."""
    over = exceeded(quota, usage.plus(1, config.cpu_millis, gpus_of(config)))
    return f"workspace quota reached: starting one more container would use {over}" if over else None


def check_one(quota: Quota, config: DeploymentConfig) -> str | None:
    """Why even one container of ``config`` can never run within the quota (naming the option), or None."""
    if quota.max_containers == 0:
        return "the workspace quota allows no containers (max_containers 0)"
    if quota.max_cpu_millis is not None and config.cpu_millis > quota.max_cpu_millis:
        return f"cpu_millis {config.cpu_millis} is more than the workspace quota allows ({quota.max_cpu_millis})"
    if quota.max_gpus is not None and gpus_of(config) > quota.max_gpus:
        return f"gpu_count {gpus_of(config)} is more than the workspace quota allows ({quota.max_gpus} GPUs)"
    return None


def check_floor(quota: Quota, config: DeploymentConfig) -> str | None:
    """Why a deployment can never run within the quota (its minimum alone passes it), or None."""
    floor = max(1, config.autoscaler.min_containers)
    over = exceeded(quota, Usage().plus(floor, floor * config.cpu_millis, floor * gpus_of(config)))
    if over is None:
        return None
    return f"this deployment needs at least {floor} container(s) and would use {over}"


def check_disk(quota: Quota, kind: str, used: int, adding: int) -> str | None:
    """Why adding ``adding`` bytes of ``kind`` (volume, code, blob) to ``used`` passes the quota, or None."""
    limit: int | None = getattr(quota, f"max_{kind}_bytes")
    if limit is None or used + adding <= limit:
        return None
    return (
        f"{kind} storage quota exceeded: the workspace holds {used} bytes of {kind} data, "
        f"this upload adds {adding}, and the quota allows {limit}"
    )
