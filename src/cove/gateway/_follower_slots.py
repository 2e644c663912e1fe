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

A request this gateway cannot serve itself goes to the leader
(:class:`ForwardToLeader`): a cold one (no ready container it can reach, a
newest version still starting, a class with constructor parameters, whose
containers are per set of values), or one whose container turned out to be
gone before it took the request. Its waiting and running requests count in
the demand the leader's autoscaler sees (:meth:`FollowerSlots.report`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._wire.peers import DemandReply, DemandReport
from ..cluster import ReadyMap
from ..scheduler import Lease, Pool, Slot, pick_slot, stored_config
from ..store import Deployment, Store
from ._upstream import UpstreamClosedIdle, UpstreamError, UpstreamUnreachable

_GONE = "it is no longer ready (as the store says)"


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
        for pool in self.pools.values():
            freed = 0
            for slot in pool.slots.values():
                count = reply.busy.get(slot.id, 0)
                freed += max(0, slot.remote_in_flight - count)
                slot.remote_in_flight = count
            if freed:
                pool.wake(freed)

    def report(self) -> DemandReport:
        """What this gateway holds now, for the leader; the containers used since the last report are listed."""
        deployments = {key: pool.in_flight for key, pool in self.pools.items() if pool.in_flight}
        containers = {cid: 0 for cid in self._used}
        for pool in self.pools.values():
            for slot in pool.slots.values():
                if slot.in_flight:
                    containers[slot.id] = slot.in_flight
        self._used = set()
        return DemandReport(gateway_id=self.gateway_id, deployments=deployments, containers=containers)

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

    # -- requests -----------------------------------------------------------------------------

    async def acquire(self, deployment: Deployment, parameters: dict[str, Any] | None = None) -> Lease:
        """A slot of a ready container of ``deployment``, waiting while all are full; ``ForwardToLeader`` if none."""
        if parameters:
            raise ForwardToLeader
        pool = self.pools.get(deployment.id)
        if pool is None:
            if deployment.id not in self._ready:
                raise ForwardToLeader
            pool = self.pools[deployment.id] = Pool(deployment=deployment, config=stored_config(deployment))
            self._sync(pool)
        pool.in_flight += 1
        try:
            while True:
                slot = pick_slot(pool)
                if slot is not None:
                    slot.in_flight += 1
                    self._used.add(slot.id)
                    return Lease(slot)
                if not pool.slots:
                    raise ForwardToLeader  # its containers went while it waited: the leader starts more
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
