"""Placement, autoscaling and container life cycle; runs inside the gateway."""

from ._autoscaler import ContainerLoad, ScaleDecision, decide
from ._placement import WorkerRoom, place
from ._scheduler import DeploymentStopped, Lease, Pool, Scheduler, StartFailed, WorkerHandle

__all__ = [
    "ContainerLoad",
    "DeploymentStopped",
    "Lease",
    "Pool",
    "ScaleDecision",
    "Scheduler",
    "StartFailed",
    "WorkerHandle",
    "WorkerRoom",
    "decide",
    "place",
]
