"""Durable tasks in flight: queues per deployment version, pushed to warm containers.

A class with constructor parameters has one queue per set of values (like its
pools, see ``cove._wire.parameters``): an input goes to containers made with
the values it names.

Each accepted input is a row in the store and an item here. A container of
a ``@function`` or ``@task_queue`` deployment gets ``concurrent_requests``
dispatch loops; each takes a batch of queued items, sends it over the
container's socket (``POST /call``), and records every outcome. Failures are
retried under the task's policy; a container or gateway that dies mid-attempt
counts as a failed attempt, so an accepted task always ends COMPLETE, FAILED
(with every attempt's error kept) or CANCELLED/EXPIRED.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._wire.config import DeploymentConfig
from .._wire.frames import FrameError, pack, unpack
from .._wire.parameters import check_declared, of_payload, pool_key
from .._wire.payload import MAGIC
from ..store import (
    TERMINAL_STATES,
    Deployment,
    KeyClaim,
    KeyHolder,
    Store,
    Task,
    TaskWriter,
    cancel_stored_map,
    cancelled_maps,
    claim_tasks,
    count_pending,
    insert_map,
    insert_unowned,
    insert_unowned_keyed,
    map_progress,
    new_id,
    next_map_seqs,
    prune_keys,
)
from ._callbacks import CallbackSender
from ._live_output import LiveOutput, merged_error, merged_result
from ._retry import after_failure

log = logging.getLogger("cove.scheduler.tasks")

MAX_BATCH = 64
FINISHED_STATES = frozenset(TERMINAL_STATES)
RECENT_RESULTS = 10_000
PENDING_RECOUNT_SECONDS = 0.5
KEY_PRUNE_SECONDS = 600  # how often the leader deletes idempotency keys past their retention

CallFn = Callable[[str, bytes, str], Awaitable[tuple[int, bytes]]]


def call_parameters(deployment: Deployment, fmt: str, payload: bytes) -> dict[str, Any]:
    """The constructor parameters an input is for: those its envelope names, defaults filled in.

    Read from the arguments as stored, so a task recovered after a restart goes to the
    same pool it was accepted for. A ``ParameterError`` says what does not fit the class.
    A JSON put (``POST /taskqueue/NAME``) names none: it takes the defaults.
    """
    declared = deployment.config.get("class_parameters") or ()
    if not declared and not payload.startswith(MAGIC):
        return {}
    return of_payload(check_declared(declared), payload if fmt == "pickle" else b"", deployment.name)


@dataclasses.dataclass(frozen=True, slots=True)
class CallOrigin:
    """The HTTP request that made a call, as its container is told: the handler's printed lines carry
    ``request_id`` (see ``cove.runner._request_ids``), and its span continues ``traceparent`` (when traced)."""

    request_id: str | None = None
    traceparent: str | None = None


def _input_meta(item: TaskItem) -> dict[str, Any]:
    """What the runner is told of one input besides its arguments: its id, format and origin (if known)."""
    meta: dict[str, Any] = {"id": item.id, "format": item.fmt}
    origin = item.origin
    if origin is not None:
        if origin.request_id:
            meta["request_id"] = origin.request_id
        if origin.traceparent:
            meta["traceparent"] = origin.traceparent
    return meta


class QueueFull(RuntimeError):
    """More than ``max_pending_tasks`` inputs are waiting; try again later."""


class KeyReused(ValueError):
    """An idempotency key came back with a different request than the one that made its task."""


@dataclasses.dataclass(eq=False)
class TaskItem:
    id: str
    deployment: Deployment
    fmt: str
    args: bytes
    created_at: float
    map_id: str | None = None
    map_index: int | None = None
    map_seq: int | None = None  # its place in its map's order of completion, once finished
    state: str = "PENDING"
    attempt: int = 0
    attempts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    not_before: float = 0.0
    started_at: float | None = None
    container_id: str | None = None
    result: bytes | None = None
    error: dict[str, Any] | None = None
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)  # the class's values it runs with
    # The request that made the call; stored with the row, so the leader knows it for a call another gateway
    # accepted and after a restart.
    origin: CallOrigin | None = None
    _done: asyncio.Event | None = dataclasses.field(default=None, init=False, repr=False)
    live: LiveOutput | None = dataclasses.field(default=None, init=False, repr=False)
    # A ``.remote`` call is written once, when it ends (or first retries): its caller is waiting
    # for the answer, so a row before dispatch would only slow the round trip down.
    stored: bool = True

    @property
    def key(self) -> str:
        """The pool (and queue) it goes to: its deployment, and its constructor parameters if any."""
        return pool_key(self.deployment.id, self.parameters)

    @property
    def done(self) -> asyncio.Event:
        """Set once the item has its outcome.

        Made on first use: most durable tasks are never awaited in the gateway,
        and an Event per put is measurable at thousands of puts a second.
        """
        if self._done is None:
            self._done = asyncio.Event()
            if self.state in FINISHED_STATES:
                self._done.set()
        return self._done

    def mark_done(self) -> None:
        if self._done is not None:
            self._done.set()
        if self.live is not None:
            self.live.pulse()

    def live_output(self) -> LiveOutput:
        """What the call's container posted while it runs (made on first use)."""
        if self.live is None:
            self.live = LiveOutput()
        return self.live

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workspace_id": self.deployment.workspace_id,
            "deployment_id": self.deployment.id,
            "name": self.deployment.name,
            "map_id": self.map_id,
            "map_index": self.map_index,
            "state": self.state,
            "format": self.fmt,
            "args": self.args,
            "result": None,
            "error": None,
            "attempts": [],
            "attempt": 0,
            "created_at": self.created_at,
            "not_before": 0.0,
            "started_at": None,
            "finished_at": None,
            "container_id": None,
            "request_id": None if self.origin is None else self.origin.request_id,
            "traceparent": None if self.origin is None else self.origin.traceparent,
        }


@dataclasses.dataclass(eq=False)
class MapState:
    """The leader's view of one ``.map``: it numbers the outputs, and keeps them until read when it serves the map.

    ``finished`` is the number the next finished input gets (``map_seq``).
    Outputs ``offset`` … ``finished - 1`` are in ``outputs`` when
    ``keeps_outputs`` (the map was created on this gateway, which serves its
    reads from memory); a map whose inputs came through other gateways is
    read from the store, and only numbered here.
    """

    id: str
    deployment: Deployment
    submitted: int = 0
    finished: int = 0
    offset: int = 0
    outputs: list[TaskItem] = dataclasses.field(default_factory=list)
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    cancelled: bool = False
    touched: float = dataclasses.field(default_factory=time.time)
    keeps_outputs: bool = True
    open: int = 0  # inputs this dispatcher holds and has not finished: the state may not be dropped


@dataclasses.dataclass(eq=False)
class TaskQueue:
    """The queued and running items of one deployment version."""

    config: DeploymentConfig
    ready: collections.deque[TaskItem] = dataclasses.field(default_factory=collections.deque)
    running: dict[str, TaskItem] = dataclasses.field(default_factory=dict)
    # Idle dispatch loops, each parked on a future. New items wake only as many loops as
    # can take them (an Event would wake every loop per put, and all but one go back to sleep).
    idle: collections.deque[asyncio.Future[None]] = dataclasses.field(default_factory=collections.deque)

    def wake(self, count: int) -> None:
        """Wake up to ``count`` idle dispatch loops."""
        while count > 0 and self.idle:
            waiter = self.idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    @property
    def load(self) -> int:
        return len(self.ready) + len(self.running)


def _check_room(queue: TaskQueue, deployment: Deployment, adding: int) -> None:
    """Refuse inputs beyond the deployment's ``max_pending_tasks``."""
    if len(queue.ready) + adding > queue.config.max_pending_tasks:
        raise QueueFull(
            f"{deployment.name} has {len(queue.ready)} inputs waiting (max_pending_tasks="
            f"{queue.config.max_pending_tasks})"
        )


def _replay_of(holder: KeyHolder, claim: KeyClaim) -> tuple[str, bool]:
    """The earlier task a repeated key returns, when the request is the same one."""
    if holder.request_hash != claim.request_hash:
        raise KeyReused(
            f"Idempotency-Key {claim.key!r} was already used for task {holder.task_id} of {claim.name} "
            "with a different request; use a new key for a different request"
        )
    return holder.task_id, True


def _log_prune(task: asyncio.Task[int]) -> None:
    if task.cancelled():
        return
    if task.exception() is not None:
        log.error("pruning expired idempotency keys failed: %s", task.exception())
    elif task.result():
        log.info("pruned %d expired idempotency keys", task.result())


def _outcome_payload(item: TaskItem) -> dict[str, Any]:
    """What a callback receives: the outcome, with the result when it is JSON (pickles stay opaque)."""
    result: Any = None
    if item.state == "COMPLETE" and item.fmt == "json" and item.result:
        result = json.loads(item.result)
    error = {k: v for k, v in (item.error or {}).items() if k in ("type", "message")} or None
    return {
        "task_id": item.id,
        "name": item.deployment.name,
        "state": item.state,
        "attempts": len(item.attempts) + (1 if item.state == "COMPLETE" else 0),
        "result": result,
        "result_size": len(item.result or b""),
        "error": error,
    }


class Dispatcher:
    """Accepts, queues, dispatches and finishes durable tasks."""

    def __init__(self, store: Store, call: CallFn, owner: str = "local") -> None:
        self.store = store
        self.owner = owner
        self.started = False
        self.writer = TaskWriter(store, owner=owner)
        self._call = call
        self.items: dict[str, TaskItem] = {}
        self.recent: collections.OrderedDict[str, TaskItem] = collections.OrderedDict()
        self.maps: dict[str, MapState] = {}
        self.queues: dict[str, TaskQueue] = {}
        # Inputs were queued for a deployment's pool of these constructor parameters.
        self.on_work: Callable[[Deployment, dict[str, Any]], None] = lambda _dep, _values: None
        # An attempt failed: the item, its error, whether it is retried and after how long (the event log).
        self.on_attempt_failed: Callable[[TaskItem, dict[str, Any], bool, float], None] = lambda *_: None
        self.callbacks = CallbackSender()
        # Not leading: per deployment, (waiting rows last counted + puts since, when counted).
        self._pending_seen: dict[str, tuple[int, float]] = {}
        self._keys_pruned = 0.0
        self._pruning: asyncio.Task[int] | None = None

    async def start(self) -> None:
        self.writer.start()
        self.started = True

    async def close(self) -> None:
        if self._pruning is not None:
            self._pruning.cancel()
        await self.callbacks.close()
        await self.writer.close()

    def queue_for(self, deployment: Deployment, parameters: dict[str, Any] | None = None) -> TaskQueue:
        """The queue of a deployment's pool for one set of constructor parameters (none: the only one)."""
        key = pool_key(deployment.id, parameters or {})
        queue = self.queues.get(key)
        if queue is None:
            queue = TaskQueue(DeploymentConfig.from_dict(deployment.config))
            self.queues[key] = queue
        return queue

    def load(self, key: str) -> int:
        """Queued and running items of one pool (``cove._wire.parameters.pool_key``)."""
        queue = self.queues.get(key)
        return queue.load if queue else 0

    def _enqueue_all(self, deployment: Deployment, items: list[TaskItem]) -> None:
        """Queue items, each in its pool's queue, and say once per pool that work arrived."""
        by_key: dict[str, list[TaskItem]] = {}
        for item in items:
            by_key.setdefault(item.key, []).append(item)
        for group in by_key.values():
            self._enqueue(self.queue_for(deployment, group[0].parameters), group)
            self.on_work(deployment, group[0].parameters)

    # -- accepting ------------------------------------------------------------------

    async def submit(
        self,
        deployment: Deployment,
        inputs: list[tuple[str, bytes]],
        *,
        durable: bool,
        map_state: MapState | None = None,
        first_index: int = 0,
        origin: CallOrigin | None = None,
    ) -> list[TaskItem]:
        """Accept inputs of (format, payload); durable ones are committed before this returns.

        ``origin`` (the accepting request) goes with each input to the container, for its log lines and spans.
        """
        if not self.started:
            return await self._submit_to_leader(deployment, inputs, map_state, first_index, origin)
        values = [call_parameters(deployment, fmt, payload) for fmt, payload in inputs]
        queue = self.queue_for(deployment, values[0] if values else None)
        _check_room(queue, deployment, len(inputs))
        now = time.time()
        items = [
            TaskItem(
                id=new_id("tsk" if map_state is None else "in"),
                deployment=deployment,
                fmt=fmt,
                args=payload,
                created_at=now,
                map_id=map_state.id if map_state else None,
                map_index=first_index + n if map_state else None,
                parameters=parameters,
                origin=origin,
            )
            for n, ((fmt, payload), parameters) in enumerate(zip(inputs, values, strict=True))
        ]
        if durable:
            await self.writer.insert([item.row() for item in items], durable=True)
        else:
            for item in items:
                item.stored = False
        if map_state is not None:
            map_state.submitted += len(items)
            map_state.open += len(items)
        for item in items:
            self.items[item.id] = item
        self._enqueue_all(deployment, items)
        return items

    async def submit_keyed(self, deployment: Deployment, fmt: str, payload: bytes, key: str) -> tuple[str, bool]:
        """Accept one durable input under an idempotency key; return (task id, whether it was a replay).

        A key that already holds a task of this deployment name in this
        workspace (within the retention window) returns that task and accepts
        nothing; with a different request it raises ``KeyReused``.
        """
        claim = KeyClaim.of(deployment.workspace_id, deployment.name, key, fmt, payload)
        parameters = call_parameters(deployment, fmt, payload)
        now = time.time()
        item = TaskItem(new_id("tsk"), deployment, fmt, payload, now, parameters=parameters)
        if not self.started:
            await self._check_pending_in_store(deployment, 1)
            holder = await insert_unowned_keyed(self.store, item.row(), claim)
            return _replay_of(holder, claim) if holder.task_id != item.id else (item.id, False)
        _check_room(self.queue_for(deployment, parameters), deployment, 1)
        holder = await self.writer.insert_keyed(item.row(), claim)
        if holder.task_id != item.id:
            return _replay_of(holder, claim)
        self.items[item.id] = item
        self._enqueue_all(deployment, [item])
        return item.id, False

    async def _submit_to_leader(
        self,
        deployment: Deployment,
        inputs: list[tuple[str, bytes]],
        map_state: MapState | None = None,
        first_index: int = 0,
        origin: CallOrigin | None = None,
    ) -> list[TaskItem]:
        """On a gateway that does not lead: commit the rows unclaimed; the leader is woken and takes them."""
        for fmt, payload in inputs:  # refused here, not later by the leader
            call_parameters(deployment, fmt, payload)
        await self._check_pending_in_store(deployment, len(inputs))
        now = time.time()
        items = [
            TaskItem(
                id=new_id("tsk" if map_state is None else "in"),
                deployment=deployment,
                fmt=fmt,
                args=payload,
                created_at=now,
                map_id=map_state.id if map_state else None,
                map_index=first_index + n if map_state else None,
                origin=origin,
            )
            for n, (fmt, payload) in enumerate(inputs)
        ]
        await insert_unowned(self.store, [item.row() for item in items])
        if map_state is not None:
            map_state.submitted += len(items)
        return items

    async def _check_pending_in_store(self, deployment: Deployment, adding: int) -> None:
        """``max_pending_tasks`` as a gateway that does not lead can see it: the store's waiting rows.

        Counted at most every ``PENDING_RECOUNT_SECONDS`` per deployment, and
        this gateway's own puts added in between, so a burst of puts costs one
        count, not one each. Puts other gateways accept in that time can pass
        the limit by what they accepted.
        """
        seen = self._pending_seen.get(deployment.id)
        now = time.monotonic()
        if seen is None or now - seen[1] > PENDING_RECOUNT_SECONDS:
            seen = (await count_pending(self.store, deployment.id), now)
        limit = self.queue_for(deployment).config.max_pending_tasks
        if seen[0] + adding > limit:
            self._pending_seen[deployment.id] = seen
            raise QueueFull(f"{deployment.name} has {seen[0]} inputs waiting (max_pending_tasks={limit})")
        self._pending_seen[deployment.id] = (seen[0] + adding, seen[1])

    def _enqueue(self, queue: TaskQueue, items: list[TaskItem]) -> None:
        queue.ready.extend(items)
        queue.wake(len(items))

    async def recover(self) -> int:
        """Claim and re-queue what was accepted but not finished by the gateway that led before."""
        return await self._take(await claim_tasks(self.store, self.owner))

    async def adopt(self) -> int:
        """Claim and queue tasks that gateways which do not lead have accepted since."""
        if not self.started:
            return 0
        taken = await self._take(await claim_tasks(self.store, self.owner, unowned_only=True))
        await self._cancel_cancelled_maps()
        return taken

    async def _cancel_cancelled_maps(self) -> None:
        """Cancel the open inputs of maps another gateway cancelled (it cancels what the store alone holds)."""
        running = [map_id for map_id, state in self.maps.items() if state.open > 0 and not state.cancelled]
        for map_id in await cancelled_maps(self.store, running):
            self.maps[map_id].cancelled = True
            for item in [i for i in list(self.items.values()) if i.map_id == map_id]:
                self.cancel(item.id)

    async def _take(self, rows: list[Task]) -> int:
        deployments: dict[str, Deployment] = {}
        for dep_id in {row.deployment_id for row in rows}:
            found = await self.store.get_deployment_by_id(dep_id)
            if found is not None:
                deployments[dep_id] = found
        await self._number_maps_of(rows, deployments)
        count = 0
        for row in rows:
            deployment = deployments.get(row.deployment_id)
            if deployment is None or row.id in self.items:
                continue
            if row.map_id is not None and row.map_id in self.maps:
                self.maps[row.map_id].open += 1
            item = TaskItem(
                id=row.id,
                deployment=deployment,
                fmt=row.format,
                args=row.args,
                created_at=row.created_at,
                map_id=row.map_id,
                map_index=row.map_index,
                attempt=row.attempt,
                attempts=list(row.attempts or []),
                parameters=call_parameters(deployment, row.format, row.args),  # checked when it was accepted
                origin=CallOrigin(row.request_id, row.traceparent) if row.request_id or row.traceparent else None,
            )
            self.items[item.id] = item
            queue = self.queue_for(deployment, item.parameters)
            if row.state == "RUNNING":
                # The attempt in flight died with the gateway: it counts, and the policy decides.
                self._failed(
                    queue,
                    item,
                    {
                        "type": "GatewayRestarted",
                        "message": "the gateway stopped during the attempt",
                        "retryable": True,
                        "mro": ["GatewayRestarted"],
                    },
                    requeue_now=True,
                )
            else:
                self._enqueue(queue, [item])
            count += 1
        woken: set[str] = set()
        for item in [self.items[row.id] for row in rows if row.id in self.items]:
            if item.key not in woken and self.load(item.key):
                woken.add(item.key)
                self.on_work(item.deployment, item.parameters)
        return count

    # -- dispatching --------------------------------------------------------------------

    async def take(self, queue: TaskQueue, live_loops: int, alive: Callable[[], bool]) -> list[TaskItem]:
        """Wait for queued items and take a fair share (a batch) of them."""
        while alive():
            self._expire(queue)
            if queue.ready:
                share = max(1, min(MAX_BATCH, math.ceil(len(queue.ready) / max(1, live_loops))))
                batch = [queue.ready.popleft() for _ in range(min(share, len(queue.ready)))]
                batch = [item for item in batch if item.state == "PENDING"]
                if queue.ready:
                    queue.wake(1)  # more than this loop's share: pass the rest on
                if batch:
                    return batch
                continue
            waiter = asyncio.get_running_loop().create_future()
            queue.idle.append(waiter)
            try:
                async with asyncio.timeout(1.0):  # look at alive() and expiries now and then
                    await waiter
            except TimeoutError:
                pass
            finally:
                if not waiter.done() or waiter.cancelled():  # still parked, unless wake() dropped it
                    with contextlib.suppress(ValueError):
                        queue.idle.remove(waiter)
        if queue.ready:
            queue.wake(1)  # this loop is ending: a wake-up it took goes to another
        return []

    async def run_batch(
        self,
        queue: TaskQueue,
        batch: list[TaskItem],
        container_id: str,
        address: str,
        exit_reason: Callable[[], Awaitable[str | None]],
        stop_container: Callable[[str], object],
    ) -> None:
        """Send one batch to a container and record every outcome."""
        now = time.time()
        for item in batch:
            item.state = "RUNNING"
            item.attempt += 1
            item.started_at = now
            item.container_id = container_id
            queue.running[item.id] = item
            self._persist(item)
        body = pack({}, [_input_meta(i) for i in batch], [i.args for i in batch], "inputs")
        timeout = queue.config.task_policy.timeout or queue.config.timeout
        try:
            async with asyncio.timeout(None if timeout < 0 else timeout * len(batch)):
                status, payload = await self._call(address, body, batch[0].id)
            if status != 200:
                raise ConnectionError(f"container answered {status}: {payload[:300]!r}")
            _, outputs = unpack(payload, "outputs")
        except TimeoutError:
            stop_container(container_id)
            error = {
                "type": "TimeoutError",
                "message": f"attempt exceeded the timeout of {timeout:g} s",
                "retryable": True,
                "mro": ["TimeoutError"],
            }
            for item in batch:
                self._failed(queue, item, error)
            return
        except (ConnectionError, OSError, FrameError) as exc:
            reason = await exit_reason() or str(exc)
            kind = "OOMKilled" if "OOMKilled" in reason else "ContainerFailed"
            error = {
                "type": kind,
                "message": f"container {container_id} failed: {reason}",
                "retryable": True,
                "mro": [kind],
            }
            for item in batch:
                self._failed(queue, item, error)
            return
        by_id = {meta.get("id"): (meta, data) for meta, data in outputs}
        for item in batch:
            found = by_id.get(item.id)
            if found is None:
                self._failed(
                    queue,
                    item,
                    {
                        "type": "ContainerFailed",
                        "message": "no outcome returned",
                        "retryable": True,
                        "mro": ["ContainerFailed"],
                    },
                )
            elif found[0].get("ok"):
                self._complete(queue, item, found[1] if item.fmt == "json" else merged_result(item.live, found[1]))
            else:
                error = merged_error(item.live, dict(found[0].get("error") or {}))
                error["exception_size"] = len(found[1])
                self._failed(queue, item, error, exception=found[1])

    # -- outcomes ---------------------------------------------------------------------------

    def _complete(self, queue: TaskQueue, item: TaskItem, result: bytes) -> None:
        if item.state != "RUNNING":
            return  # cancelled meanwhile, or reported twice: one outcome is kept
        queue.running.pop(item.id, None)
        item.state = "COMPLETE"
        item.result = result
        self._finish(item)

    def _failed(
        self,
        queue: TaskQueue,
        item: TaskItem,
        error: dict[str, Any],
        *,
        exception: bytes = b"",
        requeue_now: bool = False,
    ) -> None:
        if item.state not in ("RUNNING", "PENDING"):
            return
        queue.running.pop(item.id, None)
        attempt = max(item.attempt, 1)
        item.attempts.append(
            {
                "attempt": attempt,
                "at": time.time(),
                "container_id": item.container_id,
                **{k: error.get(k) for k in ("type", "message", "traceback")},
            }
        )
        step = after_failure(queue.config.task_policy, attempt, error)
        self.on_attempt_failed(item, error, step.retry, step.delay)
        if step.retry:
            item.state = "PENDING"
            item.not_before = time.time() + step.delay
            self._persist(item)
            asyncio.get_running_loop().call_later(step.delay, self._requeue, queue, item)
            return
        item.state = "FAILED"
        item.error = {**error, "attempts": len(item.attempts)}
        item.result = exception or None
        self._finish(item)

    def _requeue(self, queue: TaskQueue, item: TaskItem) -> None:
        if item.state == "PENDING":
            self._enqueue(queue, [item])
            self.on_work(item.deployment, item.parameters)

    def _finish(self, item: TaskItem) -> None:
        state = self.maps.get(item.map_id) if item.map_id is not None else None
        if state is not None:  # numbered before its row is written: the number goes with it
            item.map_seq = state.finished
            state.finished += 1
            state.open -= 1
        self._persist(item, finished=True)
        item.mark_done()
        self.items.pop(item.id, None)
        self.recent[item.id] = item
        while len(self.recent) > RECENT_RESULTS:
            self.recent.popitem(last=False)
        url = item.deployment.config.get("callback_url") if item.deployment is not None else None
        if url:
            dep = item.deployment
            self.callbacks.send(url, _outcome_payload(item), workspace_id=dep.workspace_id, name=dep.name)
        if state is not None:
            if state.keeps_outputs:
                state.outputs.append(item)
            state.changed.set()

    def _persist(self, item: TaskItem, finished: bool = False) -> None:
        if not item.stored:
            if item.state == "RUNNING":
                return
            item.stored = True
            self.writer.insert_nowait([item.row()])
        self.writer.update(
            item.id,
            state=item.state,
            result=item.result if finished else None,
            error=item.error,
            attempts=item.attempts,
            attempt=item.attempt,
            not_before=item.not_before,
            started_at=item.started_at,
            finished_at=time.time() if finished else None,
            container_id=item.container_id,
            map_seq=item.map_seq,
            map_id=item.map_id if finished else None,
        )

    def _expire(self, queue: TaskQueue) -> None:
        ttl = queue.config.task_policy.ttl
        if not ttl or not queue.ready:
            return
        now = time.time()
        while queue.ready and (queue.ready[0].state != "PENDING" or now - queue.ready[0].created_at > ttl):
            item = queue.ready.popleft()
            if item.state != "PENDING":
                continue  # cancelled while queued
            item.state = "EXPIRED"
            item.error = {"type": "Expired", "message": f"not picked up within ttl={ttl:g} s"}
            self._finish(item)

    def tick(self) -> None:
        for queue in self.queues.values():
            self._expire(queue)
        self._prune_keys()
        cutoff = time.time() - 3600
        for map_id, state in list(self.maps.items()):
            if state.touched < cutoff and state.open <= 0:  # with inputs open, it still numbers outputs
                self.maps.pop(map_id, None)

    def _prune_keys(self) -> None:
        """Start deleting expired idempotency keys every ``KEY_PRUNE_SECONDS`` (in the background)."""
        now = time.monotonic()
        if now - self._keys_pruned < KEY_PRUNE_SECONDS or (self._pruning is not None and not self._pruning.done()):
            return
        self._keys_pruned = now
        self._pruning = asyncio.get_running_loop().create_task(prune_keys(self.store), name="cove-prune-keys")
        self._pruning.add_done_callback(_log_prune)

    # -- calls from the API -----------------------------------------------------------------

    def find(self, task_id: str) -> TaskItem | None:
        return self.items.get(task_id) or self.recent.get(task_id)

    def cancel(self, task_id: str) -> TaskItem | None:
        item = self.items.get(task_id)
        if item is None or item.state not in ("PENDING", "RUNNING"):
            return item
        queue = self.queues.get(item.key)
        if queue is not None:
            queue.running.pop(item.id, None)
        item.state = "CANCELLED"
        item.error = {"type": "Cancelled", "message": "cancelled by the caller"}
        self._finish(item)
        return item

    async def new_map(self, deployment: Deployment) -> MapState:
        """A map, committed so that any gateway can take its inputs and read its outputs.

        On the leader its outputs are also kept in memory until read (the
        fast path for a caller that stays on this gateway).
        """
        state = MapState(id=new_id("map"), deployment=deployment)
        await insert_map(self.store, state.id, deployment.workspace_id, deployment.id)
        if self.started:
            self.maps[state.id] = state
        return state

    async def stored_map(self, map_id: str, deployment: Deployment) -> MapState:
        """A map this gateway did not create (or has dropped), as far as the store has got with it.

        Only numbered here (its outputs are read from the store); the leader
        keeps it so that the inputs it runs get the next numbers.
        """
        state = self.maps.get(map_id)
        if state is not None:
            return state
        submitted, _ = await map_progress(self.store, map_id)
        seq = (await next_map_seqs(self.store, [map_id]))[map_id] if self.started else 0
        state = self.maps.get(map_id)  # another request may have made it meanwhile
        if state is None:
            state = MapState(map_id, deployment, submitted, seq, seq, keeps_outputs=False)
            state.open = sum(1 for i in self.items.values() if i.map_id == map_id)
            if self.started:
                self.maps[map_id] = state
        return state

    async def _number_maps_of(self, rows: list[Task], deployments: dict[str, Deployment]) -> None:
        """Make the states of the maps taken rows belong to, numbering on from the store (a new leader)."""
        missing = {row.map_id: row.deployment_id for row in rows if row.map_id and row.map_id not in self.maps}
        if not missing:
            return
        for map_id, seq in (await next_map_seqs(self.store, missing)).items():
            deployment = deployments.get(missing[map_id])
            if deployment is not None and map_id not in self.maps:
                self.maps[map_id] = MapState(map_id, deployment, finished=seq, offset=seq, keeps_outputs=False)

    async def cancel_map(self, map_id: str) -> int:
        """Cancel the map's open inputs: those this dispatcher holds, and those still waiting in the store."""
        state = self.maps.get(map_id)
        if state is not None:
            state.cancelled = True
        pending = [i for i in list(self.items.values()) if i.map_id == map_id and i.state in ("PENDING", "RUNNING")]
        for item in pending:
            self.cancel(item.id)
        return await cancel_stored_map(self.store, map_id, time.time()) or len(pending)
