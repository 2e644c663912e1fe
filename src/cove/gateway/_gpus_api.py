"""``GET /api/v1/gpus`` and the GPU metrics: each worker's GPUs, who holds which share, live usage.

Built from the scheduler's live picture (placements) and the workers'
heartbeats (NVML figures; null on fake GPUs), never from the database.
Containers of other workspaces show only as held capacity, without names.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .._wire import api as wire
from ..scheduler import Scheduler
from ._background import running
from ._deps import GatewayDep, PrincipalDep
from ._gpu_history import GpuHistory, Reading


@contextlib.asynccontextmanager
async def _keep_history(app: Any) -> AsyncIterator[None]:
    """While the gateway runs: every card's last hour in ``app.state.gpu_history``, read from its heartbeats."""
    scheduler: Scheduler = app.state.gateway.scheduler
    history = app.state.gpu_history = GpuHistory()

    def readings() -> list[Reading]:
        return [
            (gpu["uuid"], gpu["utilization"], gpu["memory_used_mib"])
            for view in gpu_views(scheduler, None)
            for gpu in view["gpus"]
        ]

    async with running(asyncio.create_task(history.run(readings), name="cove-gpu-history")):
        yield


router = APIRouter(prefix="/api/v1", lifespan=_keep_history)
MIB = 1024 * 1024


def gpu_views(scheduler: Scheduler, workspace_id: str | None) -> list[dict[str, Any]]:
    """Per live worker with GPUs: each GPU with its holders; ``workspace_id`` None shows every holder."""
    out = []
    for worker in scheduler.workers.values():
        if worker.state == "lost" or not worker.gpus:
            continue
        holders = scheduler.gpu_holders(worker.id)
        gpus = []
        for gpu in worker.gpus:
            usage = worker.gpu_usage.get(gpu.uuid, {})
            mine = [(slot, share) for slot, share in holders if share.uuid == gpu.uuid]
            gpus.append(
                {
                    "index": gpu.index,
                    "uuid": gpu.uuid,
                    "name": gpu.name,
                    "memory_mib": gpu.memory_mib,
                    "utilization": usage.get("utilization"),
                    "memory_used_mib": usage.get("memory_used_mib"),
                    "held_whole": any(share.whole for _slot, share in mine),
                    "allocated_memory_mib": sum(share.memory_mib for _slot, share in mine),
                    "allocated_compute": sum(share.compute for _slot, share in mine),
                    "holders": [
                        _holder(worker.gpu_container_memory, slot, share, workspace_id) for slot, share in mine
                    ],
                }
            )
        out.append({"worker_id": worker.id, "worker": worker.name, "state": worker.state, "gpus": gpus})
    return out


def _holder(used: dict[str, int], slot: Any, share: Any, workspace_id: str | None) -> dict[str, Any]:
    visible = workspace_id is None or slot.pool.deployment.workspace_id == workspace_id
    return {
        "container_id": slot.id if visible else None,
        "deployment": slot.pool.deployment.name if visible else None,
        "other_workspace": not visible,
        "state": slot.state,
        "whole": share.whole,
        "memory_mib": share.memory_mib,
        "compute": share.compute,
        "memory_used_mib": used.get(slot.id) if visible else None,
    }


@router.get(
    "/gpus",
    summary="GPUs per worker: type, memory, UUID, the shares containers hold, live usage",
    response_model=list[wire.GpuWorker],
)
async def list_gpus(gw: GatewayDep, who: PrincipalDep) -> list[dict[str, Any]]:
    return gpu_views(gw.scheduler, None if who.role == "admin" else who.workspace_id)


@router.get(
    "/gpus/history",
    summary="Each GPU's last hour of utilisation and memory use (10 s buckets), for charts",
    response_model=list[wire.GpuHistory],
)
async def gpu_history(request: Request, gw: GatewayDep, who: PrincipalDep) -> list[dict[str, Any]]:
    history: GpuHistory = request.app.state.gpu_history
    now = time.time()
    return [
        {
            "worker": view["worker"],
            "index": gpu["index"],
            "uuid": gpu["uuid"],
            "name": gpu["name"],
            "memory_mib": gpu["memory_mib"],
            **history.view(gpu["uuid"], now),
        }
        for view in gpu_views(gw.scheduler, None)
        for gpu in view["gpus"]
    ]


class GpuCollector(Collector):
    """Prometheus gauges read from the scheduler at scrape time (no stale series for gone containers)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["worker", "gpu", "uuid", "type"]
        total = GaugeMetricFamily("cove_gpu_memory_bytes", "GPU memory", labels=labels)
        used = GaugeMetricFamily("cove_gpu_memory_used_bytes", "GPU memory in use (NVML)", labels=labels)
        util = GaugeMetricFamily("cove_gpu_utilization_percent", "GPU utilisation (NVML)", labels=labels)
        allocated = GaugeMetricFamily(
            "cove_gpu_allocated_memory_bytes", "GPU memory given to containers", labels=labels
        )
        compute = GaugeMetricFamily("cove_gpu_allocated_compute_percent", "SM share given to containers", labels=labels)
        per = ["container", "deployment", "worker", "uuid"]
        limit = GaugeMetricFamily("cove_container_gpu_memory_limit_bytes", "A container's GPU memory share", labels=per)
        c_used = GaugeMetricFamily("cove_container_gpu_memory_used_bytes", "GPU memory a container uses", labels=per)
        c_compute = GaugeMetricFamily("cove_container_gpu_compute_percent", "A container's SM share", labels=per)
        for view in gpu_views(self.scheduler, None):
            for gpu in view["gpus"]:
                key = [view["worker"], str(gpu["index"]), gpu["uuid"], gpu["name"]]
                total.add_metric(key, gpu["memory_mib"] * MIB)
                allocated.add_metric(key, gpu["allocated_memory_mib"] * MIB)
                compute.add_metric(key, gpu["allocated_compute"])
                if gpu["memory_used_mib"] is not None:
                    used.add_metric(key, gpu["memory_used_mib"] * MIB)
                if gpu["utilization"] is not None:
                    util.add_metric(key, gpu["utilization"])
                for holder in gpu["holders"]:
                    who = [holder["container_id"], holder["deployment"], view["worker"], gpu["uuid"]]
                    limit.add_metric(who, holder["memory_mib"] * MIB)
                    c_compute.add_metric(who, holder["compute"])
                    if holder["memory_used_mib"] is not None:
                        c_used.add_metric(who, holder["memory_used_mib"] * MIB)
        yield from (total, used, util, allocated, compute, limit, c_used, c_compute)
