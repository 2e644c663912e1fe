"""A follower's own container slots: endpoint invocations relayed straight to ready containers, not via the leader.

The leader's scheduler places and stops containers; a gateway that does not
lead mirrors the ready ones (``cove.cluster.ReadyView``, from the store a few
times a second) into pools of the scheduler's own shape and picks a slot the
way the scheduler does (:func:`cove.scheduler.pick_slot`). Sharing a
container's ``concurrent_requests`` between gateways: each gateway counts
what it runs there itself, and the leader's answer to its demand report
(every 200 ms) says what runs there elsewhere; a gateway sends a container
no more than that leaves. Two gateways that both see room in the same 200 ms
may pass the limit together; the runner's own gate then queues the extra
request in the container (nothing fails; it waits there instead of in a
gateway). The leader counts followers' reports the same way in its own picks.

A cold request (no ready container it can reach) asks the leader for
containers once per burst (:class:`~cove._wire.peers.ColdStart`, coalesced
per deployment: a new ask only when more requests wait than the last one
said) and waits here until its view sees one ready. The leader counts the
waiting requests at once, as for its own, so a burst from zero starts as
many containers as it would on the leader; a pool that can get none fails
its requests with the leader's 503 (the ask's answer, or the ``failing`` part
of a demand reply). A request that names no version asks with
``serve_older``: while the newest version starts, an older one with a ready
container answers, as on the leader.

Still handed to the leader (:class:`ForwardToLeader`): a class with
constructor parameters (its containers are per set of values, which the store
does not show), a request whose container turned out to be gone before it
took the request, and any cold request while no leader answers the ask. Its
waiting and running requests count in the demand the leader's autoscaler
sees (:meth:`FollowerSlots.report`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from .._wire.peers import ColdReply, ColdStart, DemandReply, DemandReport, StartRefusal
from ..cluster import ReadyMap
from ..scheduler import Lease, NoCapacity, Pool, Slot, StartFailed, pick_slot, stored_config
from ..store import Deployment, Store
from ._upstream import UpstreamClosedIdle, UpstreamError, UpstreamUnreachable

_GONE = "it is no longer ready (as the store says)"
REASK_SECONDS = 2.0  # a cold pool asks again this often (a lost ask, a new leader), besides when demand grows
SERVING_SECONDS = 1.0  # how long the leader's word that an older version serves is used without asking again

AskLeader = Callable[[ColdStart], Coroutine[Any, Any, ColdReply | None]]
# (call id, after, wait) -> the leader's answer to a read of the call's live output; None: it holds none
ReadOutput = Callable[[str, int, float], Coroutine[Any, Any, dict[str, object] | None]]


def _failure(refusal: StartRefusal) -> StartFailed:
    return NoCapacity(refusal.message) if refusal.type == "NoCapacity" else StartFailed(refusal.message)


class _Ask:
    """The cold ask of one deployment: at most one on the way, and what the last one said."""

    __slots__ = ("at", "refusal", "sent", "task")

    def __init__(self) -> None:
        self.sent = 0
        self.at = 0.0
        self.task: asyncio.Task[ColdReply | None] | None = None
        self.refusal: StartRefusal | None = None

    def answered(self, task: asyncio.Task[ColdReply | None]) -> None:
        """Take the answer of ``task`` (once: it runs as its done callback or earlier, from ``_ask``)."""
        if self.task is not task:
            return
        self.task = None
        reply = None if task.cancelled() or task.exception() is not None else task.result()
        self.refusal = None if reply is None else reply.refusal


class ForwardToLeader(Exception):
    """This gateway does not serve the request itself; the leader does. ``body``: what was read of it already."""

    def __init__(self, body: bytes = b"") -> None:
        super().__init__("forward to the leader")
        self.body = body


class FollowerSlots:
    """Ready containers by deployment, with this gateway's load on each; acquire and release like the scheduler."""

    def __init__(self, store: Store, gateway_id: str, on_container_gone: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.gateway_id = gateway_id
        self.pools: dict[str, Pool] = {}
        self._ready: ReadyMap = {}
        self._busy: dict[str, int] = {}  # container -> requests running there elsewhere
        self._used: set[str] = set()  # containers that took a request since the last report
        self._on_container_gone = on_container_gone
        self.ask_leader: AskLeader | None = None  # set by the loops that talk to the leader
        self.read_output: ReadOutput | None = None  # likewise (``cove.gateway._follower_output``)
        self.unreachable: Callable[[], frozenset[str]] = frozenset  # likewise: ready, but not where this connects
        self._asks: dict[str, _Ask] = {}
        self._refused: dict[str, StartRefusal] = {}  # deployment -> why the leader starts none (demand replies)
        self._serving: dict[str, tuple[float, Deployment]] = {}  # newest id -> (when, the older version serving)
        self._by_id: dict[str, Deployment] = {}
        # The native front's calls, as last counted (``cove.gateway._front_tables``): deployment and container
        # figures, reported with this gateway's own (the leader counts them as this gateway's).
        self._front: tuple[dict[str, int], dict[str, int]] = ({}, {})

    # -- the picture ---------------------------------------------------------------------

    def on_ready(self, ready: ReadyMap) -> None:
        """The ready containers changed: add and drop slots, wake requests that wait for room."""
        self._ready = ready
        for key, pool in list(self.pools.items()):
            self._sync(pool)
            if not pool.slots and not pool.in_flight:
                del self.pools[key]

    def on_reply(self, reply: DemandReply) -> None:
        """The leader said what runs on each container elsewhere; room that came back wakes waiting requests."""
        self._busy = reply.busy
        self._refused = reply.failing
        for key, pool in self.pools.items():
            if key in reply.failing and not pool.slots:
                pool.wake()
            freed = 0
            for slot in pool.slots.values():
                count = reply.busy.get(slot.id, 0)
                freed += max(0, slot.remote_in_flight - count)
                slot.remote_in_flight = count
            if freed:
                pool.wake(freed)

    def report(self) -> DemandReport:
        """What this gateway holds now, for the leader; the containers used since the last report are listed."""
        front_deployments, front_containers = self._front
        deployments = dict(front_deployments)
        for key, pool in self.pools.items():
            if pool.in_flight:
                deployments[key] = deployments.get(key, 0) + pool.in_flight
        containers = {cid: 0 for cid in self._used}
        containers.update(front_containers)
        for pool in self.pools.values():
            for slot in pool.slots.values():
                if slot.in_flight:
                    containers[slot.id] = containers.get(slot.id, 0) + slot.in_flight
        self._used = set()
        self._front = ({}, {})
        return DemandReport(gateway_id=self.gateway_id, deployments=deployments, containers=containers)

    def front_load(self, deployments: dict[str, int], containers: dict[str, int]) -> None:
        """The native front's running and waiting calls by deployment, and its calls per container (0: used
        since its last count), for the next report: the leader sees them as this gateway's."""
        held_deployments, held_containers = self._front
        for key, count in deployments.items():
            held_deployments[key] = max(held_deployments.get(key, 0), count)
        for cid, count in containers.items():
            held_containers[cid] = max(held_containers.get(cid, 0), count)

    def _sync(self, pool: Pool) -> None:
        wanted = self._ready.get(pool.deployment.id, {})
        for cid, slot in list(pool.slots.items()):
            if wanted.get(cid) != slot.address:
                self._drop(slot, _GONE)
        for cid, address in wanted.items():
            if cid not in pool.slots:
                pool.slots[cid] = Slot(
                    id=cid,
                    pool=pool,
                    worker_id="",
                    state="ready",
                    address=address,
                    remote_in_flight=self._busy.get(cid, 0),
                )
        pool.wake()

    def _drop(self, slot: Slot, reason: str) -> None:
        slot.state = "exited"
        slot.pool.slots.pop(slot.id, None)
        if not slot.exited.done():
            slot.exited.set_result(reason)
        if slot.address and self._on_container_gone is not None:
            self._on_container_gone(slot.address)

    def has_ready(self, deployment_id: str) -> bool:
        """Whether this gateway sees a ready container of the deployment that it can connect to."""
        return bool(self._ready.get(deployment_id))

    # -- requests -----------------------------------------------------------------------------

    def _pool(self, deployment: Deployment) -> Pool:
        pool = self.pools.get(deployment.id)
        if pool is None:
            pool = self.pools[deployment.id] = Pool(deployment=deployment, config=stored_config(deployment))
            self._sync(pool)
        return pool

    async def serving_version(self, newest: Deployment, parameters: dict[str, Any] | None = None) -> Deployment:
        """The version that answers a call to its name now (``Scheduler.serving_version``, as the leader sees it).

        The newest when this gateway has a ready container of it (no ask);
        otherwise the leader says, and its answer is used for ``SERVING_SECONDS``.
        """
        if parameters or newest.id in self._ready or newest.id in self.unreachable():
            return newest
        seen = self._serving.get(newest.id)
        fresh = seen is not None and time.monotonic() - seen[0] < SERVING_SECONDS
        if seen is not None and fresh and (seen[1].id == newest.id or seen[1].id in self._ready):
            return seen[1]
        reply = await self._ask(self._pool(newest), serve_older=True)
        serving = newest
        if reply is not None and reply.serving_id != newest.id:
            older = self._by_id.get(reply.serving_id) or await self.store.get_deployment_by_id(reply.serving_id)
            if older is not None:
                self._by_id[older.id] = serving = older
        self._serving[newest.id] = (time.monotonic(), serving)
        return serving

    async def _ask(self, pool: Pool, serve_older: bool = False) -> ColdReply | None:
        """Ask the leader for containers of a cold pool, unless an ask is on the way or said enough already."""
        deployment_id = pool.deployment.id
        ask = self._asks.setdefault(deployment_id, _Ask())
        if ask.task is not None and ask.task.done():
            ask.answered(ask.task)  # before its callback runs: a done ask is not "on the way" (no spinning on it)
        now = time.monotonic()
        waiting = pool.in_flight + (1 if serve_older else 0)  # asked for a request that is not acquiring yet
        if ask.task is None and (serve_older or waiting > ask.sent or now - ask.at > REASK_SECONDS):
            if self.ask_leader is None:
                return None
            ask.sent, ask.at = waiting, now
            message = ColdStart(self.gateway_id, deployment_id, waiting, serve_older)
            ask.task = asyncio.create_task(self.ask_leader(message))
            ask.task.add_done_callback(ask.answered)
        if ask.task is None:  # said enough already: its answer, or the latest demand reply's, stands
            return ColdReply(serving_id=deployment_id, refusal=ask.refusal or self._refused.get(deployment_id))
        return await asyncio.shield(ask.task)

    def ready_version(self, newest: Deployment) -> Deployment | None:
        """:meth:`serving_version` when it needs no ask (a ready container of ``newest`` here); else None."""
        return newest if newest.id in self._ready else None

    def try_acquire(self, deployment: Deployment) -> Lease | None:
        """A free slot of a ready container at once (``acquire``'s first look), or None: nothing changed."""
        pool = self.pools.get(deployment.id)
        slot = None if pool is None else pick_slot(pool)
        return None if slot is None else self._take(slot)

    def hold(self, container_id: str) -> Lease | None:
        """:meth:`Scheduler.hold <cove.scheduler.Scheduler.hold>`, on the containers this gateway sees ready."""
        for pool in self.pools.values():
            slot = pool.slots.get(container_id)
            if slot is not None:
                return self._take(slot)
        return None

    def _take(self, slot: Slot) -> Lease:
        """A lease of ``slot`` counted at once (its pool's calls, its own, and its use since the last report)."""
        slot.pool.in_flight += 1
        slot.in_flight += 1
        self._used.add(slot.id)
        return Lease(slot)

    async def acquire(self, deployment: Deployment, parameters: dict[str, Any] | None = None) -> Lease:
        """A slot of a ready container of ``deployment``, waiting while all are full or none is ready yet.

        With none ready, the leader is asked for containers (once per burst);
        ``StartFailed``/``NoCapacity`` when it says none can start, and
        ``ForwardToLeader`` for a class with parameters or while no leader answers.
        """
        if parameters:
            raise ForwardToLeader
        pool = self._pool(deployment)
        pool.in_flight += 1
        try:
            while True:
                slot = pick_slot(pool)
                if slot is not None:
                    slot.in_flight += 1
                    self._used.add(slot.id)
                    return Lease(slot)
                if not pool.slots:
                    if deployment.id in self.unreachable():
                        raise ForwardToLeader  # ready where only the leader connects (its host's sockets)
                    reply = await self._ask(pool)
                    if reply is None:
                        raise ForwardToLeader  # no leader answered: it answers with its usual errors, or 503
                    refusal = reply.refusal or self._refused.get(deployment.id)
                    if refusal is not None and not pool.slots:
                        raise _failure(refusal)
                    if pool.slots or pool.in_flight > self._asks[deployment.id].sent:
                        continue  # ready now, or more requests joined while the ask was on its way: ask again
                await pool.wait_for_wake()
        except BaseException:
            pool.in_flight -= 1
            raise

    def release(self, lease: Lease, *, served: bool = True) -> None:
        slot = lease.slot
        slot.in_flight -= 1
        if served:
            slot.served += 1
        slot.pool.in_flight -= 1
        slot.pool.wake(1)

    async def never_reached(self, lease: Lease, exc: UpstreamError) -> bool:
        """Whether a failed relay never reached the container's handler, so the leader may take the request.

        A refused connection never did. A kept-alive connection closed before
        any byte of the answer did not if the container is stopping (a stopping
        runner closes its idle connections; this gateway's picture lags the
        leader's by up to one poll); otherwise the container may have died
        running it, and the caller gets the leader's answer for that (502/503).
        The container is used no more here until the store says it is ready again.
        """
        if isinstance(exc, UpstreamClosedIdle):
            row = await self.store.get_container(lease.container_id)
            if row is None or row.state != "stopping":
                return False
        elif not isinstance(exc, UpstreamUnreachable):
            return False
        self._drop(lease.slot, "the connection to it failed")
        return True
