"""Per-workspace limits on containers, cpu and GPUs, and the checks against them.

A quota is checked twice: when a deployment is registered (a floor of
``min_containers`` that can never fit is refused at once) and whenever the
scheduler is about to start a container (a start that would pass the limit
waits, with the reason shown in ``cove ps``). ``None`` means no limit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .._config import DeploymentConfig


@dataclasses.dataclass(frozen=True)
class Quota:
    """Limits for one workspace; a field left ``None`` is unlimited."""

    max_containers: int | None = None
    max_cpu_millis: int | None = None
    max_gpus: int | None = None

    def to_dict(self) -> dict[str, int | None]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quota:
        return cls(**{f.name: data.get(f.name) for f in dataclasses.fields(cls)})

    @property
    def unlimited(self) -> bool:
        return all(value is None for value in dataclasses.astuple(self))


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


def check_floor(quota: Quota, config: DeploymentConfig) -> str | None:
    """Why a deployment can never run within the quota (its minimum alone passes it), or None."""
    floor = max(1, config.autoscaler.min_containers)
    over = exceeded(quota, Usage().plus(floor, floor * config.cpu_millis, floor * gpus_of(config)))
    if over is None:
        return None
    return f"this deployment needs at least {floor} container(s) and would use {over}"
