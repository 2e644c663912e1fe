"""Placement, autoscaling and container life cycle; runs inside the gateway."""

from ._autoscaler import ContainerLoad, ScaleDecision, decide
from ._callbacks import ALLOW_ENV, CallbackPolicy, CallbackRefused, allowance_from_env
from ._cron import next_tick
from ._dispatch import FINISHED_STATES, KeyReused, QueueFull, TaskItem, call_parameters
from ._placement import GpuRoom, WorkerRoom, place
from ._quotas import LIMITS, Quota, check_disk, check_floor, check_one
from ._scheduler import (
    DeploymentStopped,
    Fit,
    Lease,
    NoCapacity,
    Pool,
    Scheduler,
    StartFailed,
    WorkerHandle,
    request_for,
)

__all__ = [
    "ALLOW_ENV",
    "FINISHED_STATES",
    "LIMITS",
    "CallbackPolicy",
    "CallbackRefused",
    "ContainerLoad",
    "DeploymentStopped",
    "Fit",
    "GpuRoom",
    "KeyReused",
    "Lease",
    "NoCapacity",
    "Pool",
    "QueueFull",
    "Quota",
    "ScaleDecision",
    "Scheduler",
    "StartFailed",
    "TaskItem",
    "WorkerHandle",
    "WorkerRoom",
    "allowance_from_env",
    "call_parameters",
    "check_disk",
    "check_floor",
    "check_one",
    "decide",
    "next_tick",
    "place",
    "request_for",
]
