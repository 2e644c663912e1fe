"""Placement, autoscaling and container life cycle; runs inside the gateway."""

from ._autoscaler import ContainerLoad, ScaleDecision, decide
from ._callbacks import ALLOW_ENV, CallbackPolicy, CallbackRefused, allowance_from_env
from ._cron import next_tick
from ._dispatch import FINISHED_STATES, CallOrigin, KeyReused, MapState, QueueFull, TaskItem, call_parameters
from ._placement import GpuRoom, WorkerRoom, place
from ._quotas import LIMITS, Quota, check_disk, check_floor, check_one
from ._scheduler import (
    DeploymentStopped,
    Fit,
    Lease,
    NoCapacity,
    Pool,
    Scheduler,
    Slot,
    StartFailed,
    WorkerHandle,
    pick_slot,
    request_for,
    stored_config,
)

__all__ = [
    "ALLOW_ENV",
    "FINISHED_STATES",
    "LIMITS",
    "CallOrigin",
    "CallbackPolicy",
    "CallbackRefused",
    "ContainerLoad",
    "DeploymentStopped",
    "Fit",
    "GpuRoom",
    "KeyReused",
    "Lease",
    "MapState",
    "NoCapacity",
    "Pool",
    "QueueFull",
    "Quota",
    "ScaleDecision",
    "Scheduler",
    "Slot",
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
    "pick_slot",
    "place",
    "request_for",
    "stored_config",
]
