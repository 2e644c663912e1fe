"""Choosing a worker (and GPUs) for a new container: a pure function of the cluster's free room.

Filters, in order: the pool, the GPU request (types in order of preference;
whole GPUs or a fraction of one), then cpu and memory. Among what fits, best
fit: the placement that leaves the least room behind, so busy workers fill up
and idle ones drain (and can be removed). When nothing fits, the answer is a
sentence naming the first filter that left no candidate, for ``cove ps``.

GPU rules: a whole GPU is free only when nothing holds any of it; fractions
are packed best-fit by memory onto one GPU each (never spanning two), never
over-committing its memory or compute, and never onto a GPU held whole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

ANY_GPU = "any"


@dataclasses.dataclass(frozen=True)
class GpuRoom:
    """One GPU of a worker and how much of it containers already hold."""

    index: int
    uuid: str
    name: str
    memory_mib: int
    held_whole: bool = False
    used_memory_mib: int = 0  # the sum of the fractions placed on it
    used_compute: int = 0  # percent of its SMs promised to those fractions

    @property
    def untouched(self) -> bool:
        return not self.held_whole and self.used_memory_mib == 0 and self.used_compute == 0


@dataclasses.dataclass(frozen=True)
class WorkerRoom:
    """A worker's free resources as the scheduler sees them."""

    worker_id: str
    free_cpu_millis: int
    free_memory_mib: int
    pool: str | None = None
    gpus: tuple[GpuRoom, ...] = ()


@dataclasses.dataclass(frozen=True)
class Request:
    """What one container needs (see ``DeploymentConfig``)."""

    cpu_millis: int
    memory_mib: int
    pool: str | None = None
    gpu: tuple[str, ...] = ()  # types in order of preference, or ("any",)
    gpu_count: int = 0
    gpu_memory_mib: int | None = None  # set: a fraction of one GPU
    gpu_compute: int | None = None  # percent; None: proportional to the memory share


@dataclasses.dataclass(frozen=True)
class GpuShare:
    """The part of one GPU a container gets: the whole card, or memory and compute of it."""

    index: int
    uuid: str
    name: str
    memory_mib: int
    compute: int  # percent of the SMs
    whole: bool

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Placement:
    worker_id: str
    gpus: tuple[GpuShare, ...] = ()


@dataclasses.dataclass(frozen=True)
class NoRoom:
    """Nothing fits now; ``reason`` says which filter left no candidate."""

    reason: str


def type_matches(wanted: str, gpu_name: str) -> bool:
    """``"H100"`` matches ``"NVIDIA H100 80GB HBM3"``: a whole word of the name, or the whole name, any case."""
    if wanted == ANY_GPU:
        return True
    want = wanted.strip().lower()
    name = gpu_name.strip().lower()
    return want == name or want in name.replace("-", " ").split()


def size_text(mib: int) -> str:
    """``10 GiB`` or ``1536 MiB``: how a person wrote it, for reasons."""
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def fraction_compute(request: Request, gpu_memory_mib: int) -> int:
    """The compute share of a fraction: as asked, else proportional to its memory share (at least 1 %).

    Rounded down, so fractions that fill a card's memory exactly (8 of 1/8 each) also fit its compute.
    """
    if request.gpu_compute is not None:
        return request.gpu_compute
    assert request.gpu_memory_mib is not None
    return max(1, min(100, 100 * request.gpu_memory_mib // gpu_memory_mib))


def place(workers: Sequence[WorkerRoom], cpu_millis: int, memory_mib: int) -> str | None:
    """The worker for a plain cpu/memory request, or None (kept for callers without GPUs)."""
    chosen = choose(workers, Request(cpu_millis, memory_mib))
    return chosen.worker_id if isinstance(chosen, Placement) else None


def choose(workers: Sequence[WorkerRoom], request: Request) -> Placement | NoRoom:
    """Where a container with ``request`` goes now, or why it cannot go anywhere."""
    pooled = [w for w in workers if request.pool is None or w.pool == request.pool]
    if not pooled:
        if request.pool is not None and workers:
            return NoRoom(f"no worker in pool {request.pool!r}")
        return NoRoom("no worker is available to run containers")
    resources = f"{request.cpu_millis}m cpu and {request.memory_mib} MiB memory free"
    if not request.gpu:
        fitting = [w for w in pooled if _fits(w, request)]
        if not fitting:
            return NoRoom(f"no worker with {resources}")
        # Plain work prefers workers without GPUs: it must not crowd out the GPU hosts' cpu.
        best = min(fitting, key=lambda w: (bool(w.gpus), *_left(w, request), w.worker_id))
        return Placement(best.worker_id)
    short_of_cpu = False
    for wanted in request.gpu:  # in order of preference: a later type only when no earlier one fits
        options: list[_Option] = list(_gpu_options(pooled, request, wanted))
        usable = [option for option in options if _fits(option[1], request)]
        if usable:
            best_option = min(usable, key=_sort_key)
            return Placement(best_option[1].worker_id, best_option[2])
        short_of_cpu = short_of_cpu or bool(options)
    if short_of_cpu:
        # The GPUs exist and are free, but not on a worker with the cpu and memory to go with them.
        return NoRoom(f"no worker with {_gpu_phrase(request)} free has {resources}")
    return NoRoom(_gpu_reason(pooled, request))


_Option = tuple[tuple[Any, ...], WorkerRoom, tuple[GpuShare, ...]]


def _sort_key(option: _Option) -> tuple[Any, ...]:
    return option[0]


def _fits(worker: WorkerRoom, request: Request) -> bool:
    return worker.free_cpu_millis >= request.cpu_millis and worker.free_memory_mib >= request.memory_mib


def _left(worker: WorkerRoom, request: Request) -> tuple[int, int]:
    return worker.free_cpu_millis - request.cpu_millis, worker.free_memory_mib - request.memory_mib


def _matching(worker: WorkerRoom, wanted: str) -> list[GpuRoom]:
    return [g for g in worker.gpus if type_matches(wanted, g.name)]


def _gpu_options(workers: Iterable[WorkerRoom], request: Request, wanted: str) -> Iterable[_Option]:
    """Every way to give ``request`` GPUs of type ``wanted``, each with its best-fit sort key."""
    for worker in workers:
        gpus = _matching(worker, wanted)
        if request.gpu_memory_mib is None:
            free = sorted((g for g in gpus if g.untouched), key=lambda g: g.index)
            if len(free) < request.gpu_count:
                continue
            taken = free[: request.gpu_count]
            shares = tuple(GpuShare(g.index, g.uuid, g.name, g.memory_mib, 100, True) for g in taken)
            # Fewest free GPUs left behind first: fill a worker before starting on an idle one.
            yield (len(free) - request.gpu_count, *_left(worker, request), worker.worker_id), worker, shares
            continue
        for gpu in gpus:
            if gpu.held_whole:
                continue
            compute = fraction_compute(request, gpu.memory_mib)
            memory_left = gpu.memory_mib - gpu.used_memory_mib - request.gpu_memory_mib
            compute_left = 100 - gpu.used_compute - compute
            if memory_left < 0 or compute_left < 0:
                continue
            share = GpuShare(gpu.index, gpu.uuid, gpu.name, request.gpu_memory_mib, compute, False)
            key = (memory_left, compute_left, *_left(worker, request), worker.worker_id, gpu.index)
            yield key, worker, (share,)


def _types_text(request: Request) -> str:
    return " or ".join(request.gpu)


def _gpu_phrase(request: Request) -> str:
    if request.gpu_memory_mib is None:
        what = "GPU" if request.gpu == (ANY_GPU,) else _types_text(request)
        return f"{request.gpu_count}×{what}"
    compute = f" and {request.gpu_compute}% compute" if request.gpu_compute is not None else ""
    kind = "" if request.gpu == (ANY_GPU,) else f" of type {_types_text(request)}"
    return f"a GPU with {size_text(request.gpu_memory_mib)}{compute}{kind}"


def _gpu_reason(workers: Sequence[WorkerRoom], request: Request) -> str:
    """Why no GPU option exists: none of the type, too few or too small, or all taken."""
    present = [g for w in workers for wanted in request.gpu for g in _matching(w, wanted)]
    kind = "GPU" if request.gpu == (ANY_GPU,) else f"GPU of type {_types_text(request)}"
    if not present:
        return f"no worker has a {kind}"
    if request.gpu_memory_mib is None:
        most = max(sum(1 for wanted in request.gpu for _ in _matching(w, wanted)) for w in workers)
        if most < request.gpu_count:
            return f"no worker has {_gpu_phrase(request)} (at most {most})"
        return f"no worker with {_gpu_phrase(request)} free"
    if all(g.memory_mib < request.gpu_memory_mib for g in present):
        return f"no {kind} has {size_text(request.gpu_memory_mib)} of memory"
    compute = f" and {request.gpu_compute}% compute" if request.gpu_compute is not None else ""
    suffix = "" if request.gpu == (ANY_GPU,) else f" of type {_types_text(request)}"
    return f"no GPU with {size_text(request.gpu_memory_mib)}{compute} free{suffix}"
