"""Choosing a worker (and GPUs) for a new container: a pure function of the cluster's free room.

Filters, in order: the pool, the GPU request (types in order of preference;
whole GPUs or a fraction of one), then cpu and memory. Among what fits, a
worker whose weight cache already holds the deployment's models comes first
(a start there fetches nothing); then best fit: the placement that leaves the
least room behind, so busy workers fill up and idle ones drain (and can be
removed). When nothing fits, the answer is a
sentence naming the first filter that left no candidate, for ``cove ps``.

GPU rules: a whole GPU is free only when nothing holds any of it; fractions
are packed best-fit by memory onto one GPU each (never spanning two), never
over-committing its memory or compute, and never onto a GPU held whole.

Whether a request could *ever* be placed (``never_fits``) is the same ``choose``
asked of the workers as if nothing ran on them, so deploy-time refusals and
fail-fast calls use one definition of what fits.
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
    # "org/name@revision" (and "@commit") its weight cache holds, from its heartbeat.
    models: frozenset[str] = frozenset()


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
    models: tuple[str, ...] = ()  # "org/name@revision": workers holding them are preferred


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
    # Why this worker, in words (for the event log); not part of what the placement is.
    reason: str = dataclasses.field(default="", compare=False)


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
    pooled = [w for w in workers if _in_pool(w, request)]
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
        best = min(fitting, key=lambda w: (_missing(w, request), bool(w.gpus), *_left(w, request), w.worker_id))
        cpu_left, memory_left = _left(best, request)
        why = (
            f"{len(fitting)} of {len(pooled)} worker(s) have {resources}; this one is left with the least "
            f"({cpu_left}m cpu, {memory_left} MiB){' of those without GPUs' if not best.gpus else ''}"
        )
        return Placement(best.worker_id, reason=_with_weights(why, best, request))
    short_of_cpu = False
    for wanted in request.gpu:  # in order of preference: a later type only when no earlier one fits
        options: list[_Option] = list(_gpu_options(pooled, request, wanted))
        usable = [option for option in options if _fits(option[1], request)]
        if usable:
            best_option = min(usable, key=lambda option: (_missing(option[1], request), *_sort_key(option)))
            why = (
                f"{len(usable)} way(s) to give {_gpu_phrase(request)} ({wanted}) with {resources}; "
                "this one leaves the fewest GPUs and the least room unused"
            )
            return Placement(
                best_option[1].worker_id, best_option[2], reason=_with_weights(why, best_option[1], request)
            )
        short_of_cpu = short_of_cpu or bool(options)
    if short_of_cpu:
        # The GPUs exist and are free, but not on a worker with the cpu and memory to go with them.
        return NoRoom(f"no worker with {_gpu_phrase(request)} free has {resources}")
    return NoRoom(_gpu_reason(pooled, request))


_Option = tuple[tuple[Any, ...], WorkerRoom, tuple[GpuShare, ...]]


def _sort_key(option: _Option) -> tuple[Any, ...]:
    return option[0]


def _missing(worker: WorkerRoom, request: Request) -> int:
    """How many of the request's models the worker's weight cache lacks (0: a start there fetches nothing)."""
    return sum(1 for model in request.models if model not in worker.models)


def _with_weights(why: str, worker: WorkerRoom, request: Request) -> str:
    if not request.models:
        return why
    held = len(request.models) - _missing(worker, request)
    return f"{why}; its weight cache holds {held} of the {len(request.models)} model(s)"


def _in_pool(worker: WorkerRoom, request: Request) -> bool:
    return request.pool is None or worker.pool == request.pool


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


# -- could it ever fit? -------------------------------------------------------------------


def never_fits(capacity: Sequence[WorkerRoom], request: Request) -> str | None:
    """Why no worker could hold one container of ``request`` even with nothing else on it; None: one could.

    ``capacity`` is each worker's whole room: all it offers, its GPUs untouched. The verdict is
    ``choose``'s on those empty workers. The reason names the first need no worker meets (the pool,
    the GPU, cpu, memory, else all of them on one worker) and what the workers offer instead.
    """
    if isinstance(choose(capacity, request), Placement):
        return None
    if not capacity:
        return "no worker is available to run containers"
    pooled = [w for w in capacity if _in_pool(w, request)]
    if not pooled:
        pools = ", ".join(repr(pool) if pool else "(none)" for pool in sorted({w.pool or "" for w in capacity}))
        return f"pool {request.pool!r}: no worker is in that pool (the workers' pools: {pools})"
    where = f" in pool {request.pool!r}" if request.pool else ""
    if request.gpu and isinstance(choose(pooled, dataclasses.replace(request, cpu_millis=0, memory_mib=0)), NoRoom):
        return _gpu_misfit(pooled, request, where)
    if isinstance(choose(pooled, Request(request.cpu_millis, 0)), NoRoom):
        most = max(w.free_cpu_millis for w in pooled)
        return (
            f"cpu {cores_text(request.cpu_millis)} (cpu_millis {request.cpu_millis}) is more than any worker{where}"
            f" has: the largest worker has {cores_text(most)}"
        )
    if isinstance(choose(pooled, Request(0, request.memory_mib)), NoRoom):
        most = max(w.free_memory_mib for w in pooled)
        return (
            f"memory {memory_text(request.memory_mib)} (memory_mib {request.memory_mib}) is more than any worker{where}"
            f" has: the largest worker has {memory_text(most)} ({most} MiB)"
        )
    cpu, memory = cores_text(request.cpu_millis), f"{memory_text(request.memory_mib)} memory"
    need = f"{cpu}, {memory} and {_gpu_need(request)}" if request.gpu else f"{cpu} and {memory}"
    shapes = sorted({_shape(w) for w in pooled}, key=lambda text: text)[:4]
    return f"no worker{where} has {need} together (workers offer: {'; '.join(shapes)})"


def cores_text(millis: int) -> str:
    """``64 cores``, ``1 core``, ``0.25 cores``."""
    cores = millis / 1000
    return f"{cores:g} core" + ("" if cores == 1 else "s")


def memory_text(mib: int) -> str:
    """``64 GiB``, ``15.5 GiB``, ``512 MiB``, ``4 TiB``: sizes as people compare them (to a tenth)."""
    if mib < 1024:
        return f"{mib} MiB"
    if mib < 1024 * 1024:
        return f"{mib / 1024:.1f}".removesuffix(".0") + " GiB"
    return f"{mib / 1024 / 1024:.1f}".removesuffix(".0") + " TiB"


def _gpu_need(request: Request) -> str:
    types = ANY_GPU if request.gpu == (ANY_GPU,) else _types_text(request)
    if request.gpu_memory_mib is not None:
        return f"gpu {types} with gpu_memory {memory_text(request.gpu_memory_mib)}"
    return f"gpu {request.gpu_count}×{types}" if request.gpu_count > 1 else f"gpu {types}"


def _inventory(workers: Iterable[WorkerRoom]) -> str:
    """The GPUs of ``workers`` counted by type: a count, the multiplication sign, the type's name."""
    counts: dict[str, int] = {}
    for worker in workers:
        for g in worker.gpus:
            counts[g.name] = counts.get(g.name, 0) + 1
    return ", ".join(f"{count}×{name}" for name, count in sorted(counts.items()))


def _wanted(gpu: GpuRoom, request: Request) -> bool:
    return any(type_matches(wanted, gpu.name) for wanted in request.gpu)


def _gpu_misfit(workers: Sequence[WorkerRoom], request: Request, where: str) -> str:
    """Why no empty worker has the GPUs ``request`` asks for, with what the workers have."""
    need = _gpu_need(request)
    if not any(w.gpus for w in workers):
        return f"{need}: no worker{where} has a GPU"
    matching = [[g for g in w.gpus if _wanted(g, request)] for w in workers]
    if not any(matching):
        return f"{need}: the workers{where} have {_inventory(workers)}, none of type {_types_text(request)}"
    if request.gpu_memory_mib is None:
        most = max(len(gpus) for gpus in matching)
        return f"{need}: at most {most} on one worker{where} (the workers have {_inventory(workers)})"
    largest = max(g.memory_mib for gpus in matching for g in gpus)
    return f"{need}: the largest such GPU{where} has {memory_text(largest)} ({largest} MiB)"


def _shape(worker: WorkerRoom) -> str:
    text = f"{cores_text(worker.free_cpu_millis)}, {memory_text(worker.free_memory_mib)}"
    inventory = _inventory([worker])
    return f"{text}, {inventory}" if inventory else text
