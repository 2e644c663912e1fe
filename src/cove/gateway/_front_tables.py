"""What the native front may serve (``cove.server._front``), told to it as this gateway learns it.

The express lane offers every warm call it served (:meth:`FrontTables.offer`):
its token (or the default workspace) and its route, each valid as long as
this gateway's own cache entry is, and the route's plan (authorized,
timeout, body limit). Every ``TICK`` the tables bring back the front's
counts (into this gateway's metrics, and its running and waiting requests
into the scheduler's demand, as a follower's report would) and tell it the
route's ready containers with the room the scheduler leaves them. A cache
dropped here (a token revoked, a deployment changed) is dropped there at once.

The leader's and a follower's plain warm path are programmed alike. On the
leader, containers and their room come from the scheduler's pools and the
front's load is a demand report of its own. On a follower they come from its
mirror of the ready containers (``FollowerSlots``), and the front's load goes
to the leader inside this gateway's report, so the share the leader says runs
elsewhere already leaves the front's out. No traffic split, no class
parameters, no declared inputs, no tracing: the front hands anything else here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

from .._wire.peers import DemandReport
from ..store import Deployment

if TYPE_CHECKING:
    from ._invoke import Leases
    from ._state import Gateway

log = logging.getLogger("cove.front")

TICK = 0.1  # seconds between two rounds of counts and containers
_REFRESH_AHEAD = 1.0  # a token or route within this many seconds of its expiry is read again here


class FrontLink(Protocol):
    """The control side of the front process (``cove.server._front.NativeFront``)."""

    def send(self, lines: list[str]) -> None: ...

    def stats(self) -> Awaitable[list[list[str]]]: ...


class _Route:
    __slots__ = ("containers", "deployment", "id", "label", "names")

    def __init__(self, route_id: int, deployment: Deployment, label: tuple[str, str]) -> None:
        self.id = route_id
        self.deployment = deployment
        self.label = label
        self.names: dict[tuple[str, str, str], float] = {}  # (workspace id, name, version or '-'): told expiry
        self.containers: dict[str, tuple[str, int]] = {}  # container id: (address, room) as told


class FrontTables:
    """The front's tables as this gateway told them, and the tick that keeps them true."""

    def __init__(self, gw: Gateway, link: FrontLink) -> None:
        self._gw = gw
        self._link = link
        self._routes: dict[str, _Route] = {}  # by deployment id
        self._by_id: dict[int, _Route] = {}
        self._tokens: dict[bytes, float] = {}  # Authorization value: told expiry (monotonic)
        self._anonymous: tuple[str, float] | None = None  # workspace id, told expiry
        self._next_id = 1
        self._report_id = f"front-{os.getpid()}"
        self._busy: dict[str, int] = {}  # container id: the front's calls there, as last counted
        self._refreshing: set[bytes] = set()
        gw.auth.on_forget.append(self.forget_tokens)
        gw.deployments.on_invalidate.append(self.forget_routes)
        self._link.send(["buckets " + " ".join(f"{b:g}" for b in gw.metrics.latency.bounds)])

    # -- what the express lane served ---------------------------------------------------------------

    def offer(
        self,
        authorization: bytes | None,
        workspace_id: str,
        name: str,
        version: int | None,
        deployment: Deployment,
        label: tuple[str, str],
        authorized: bool,
        timeout: float,
        max_body: int,
    ) -> None:
        """A warm call the lane just served: make sure the front knows its caller and its route."""
        now = time.monotonic()
        gw = self._gw
        lines: list[str] = []
        if authorization is None:
            until = gw.auth.workspace_cached_until(gw.settings.default_workspace)
            if self._anonymous is None or self._anonymous[0] != workspace_id or self._anonymous[1] < until - 0.5:
                self._anonymous = (workspace_id, until)
                lines.append(f"anonymous {workspace_id}")
        else:
            until = gw.auth.cached_until(authorization)
            if self._tokens.get(authorization, 0.0) < until - 0.5 and b" " not in authorization.strip()[7:]:
                self._tokens[authorization] = until
                lines.append(f"token {authorization.hex()} {workspace_id} {int((until - now) * 1000)}")
        route = self._routes.get(deployment.id)
        if route is None or route.deployment is not deployment:
            if route is None:
                route = _Route(self._next_id, deployment, label)
                self._next_id += 1
                self._routes[deployment.id] = route
                self._by_id[route.id] = route
            route.deployment, route.label = deployment, label
            timeout_ms = int(timeout * 1000) if timeout >= 0 else -1
            lines.append(f"route {route.id} {int(authorized)} {timeout_ms} {max_body}")
            self._sync_containers(route, lines)
        key = (workspace_id, name, "-" if version is None else str(version))
        until = gw.deployments.plain_until(workspace_id, name, version)
        if until > now and route.names.get(key, 0.0) < until - 0.5 and _plain(name):
            route.names[key] = until
            lines.append(f"name {key[0]} {key[1]} {key[2]} {route.id} {int((until - now) * 1000)}")
        self._link.send(lines)

    def route(self, route_id: int) -> _Route | None:
        return self._by_id.get(route_id)

    def slots(self) -> Leases:
        """Where this gateway's calls take their slots now: the scheduler when it leads, else its mirror."""
        return self._gw.scheduler if self._gw.cluster.leading else self._gw.follower

    def forget_tokens(self) -> None:
        self._tokens.clear()
        self._anonymous = None
        self._link.send(["untoken *", "anonymous -"])

    def forget_routes(self) -> None:
        for route in self._routes.values():
            route.names.clear()
        self._link.send(["unname *"])

    # -- the tick -----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Every ``TICK``: the front's counts in, its containers out, its cached answers kept fresh."""
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.tick()
            except ConnectionError:
                log.warning("the native front is gone; this gateway no longer hears from it")
                return
            except Exception:
                log.exception("a round with the native front failed")

    async def settle(self) -> None:
        """Take the front's counts now (a scrape of ``/metrics`` sees every call answered before it)."""
        with contextlib.suppress(ConnectionError):
            self._take_counts(await self._link.stats())

    async def tick(self) -> None:
        lines = await self._link.stats()
        self._take_counts(lines)
        out: list[str] = []
        for route in list(self._routes.values()):
            self._sync_containers(route, out)
        self._refresh(out)
        self._link.send(out)

    def _take_counts(self, lines: list[list[str]]) -> None:
        metrics = self._gw.metrics
        busy: dict[str, int] = {}
        demand: dict[str, int] = {}
        for line in lines:
            kind = line[0]
            if kind == "count":
                route = self._by_id.get(int(line[1]))
                if route is None:
                    continue
                status, count, sum_us = line[2], int(line[3]), int(line[4])
                metrics.invocations.add((*route.label, status), count)
                metrics.latency.add_counts(route.label, [int(n) for n in line[5:]], count, sum_us / 1e6)
                metrics.express.add(route.label[:1], count)
                metrics.native_front.add(route.label[:1], count)
            elif kind == "busy":
                route = self._by_id.get(int(line[1]))
                busy[line[2]] = int(line[3])
                if route is not None:
                    demand[route.deployment.id] = demand.get(route.deployment.id, 0) + int(line[3])
            elif kind == "limit":
                route = self._by_id.get(int(line[1]))
                if route is not None and line[2] in route.containers:
                    metrics.native_front_limit.labels(*route.label, line[2]).set(int(line[3]))
            elif kind == "waiting":
                route = self._by_id.get(int(line[1]))
                if route is not None:
                    demand[route.deployment.id] = demand.get(route.deployment.id, 0) + int(line[2])
        used = {cid: busy.get(cid, 0) for cid in set(busy) | set(self._busy)}  # 0: used since the last report
        self._busy = busy
        if not (demand or used):
            return
        if self._gw.cluster.leading:
            self._gw.scheduler.report_demand(DemandReport(self._report_id, demand, used))
        else:
            self._gw.follower.front_load(demand, used)

    def _sync_containers(self, route: _Route, out: list[str]) -> None:
        """Tell the front the route's ready containers, each with the room this gateway's picture leaves them."""
        leading = self._gw.cluster.leading
        pools = self._gw.scheduler.pools if leading else self._gw.follower.pools
        pool = pools.get(route.deployment.id)
        ready: dict[str, tuple[str, int]] = {}
        if pool is not None:
            limit = pool.config.concurrent_requests
            for slot in pool.slots.values():
                if slot.state != "ready" or slot.address is None or slot.retiring:
                    continue
                # Other gateways' share: the leader counts the front's own report in it; a follower's comes
                # from the leader's reply, which leaves out this gateway's report (the front's load included).
                others = slot.remote_in_flight - (self._busy.get(slot.id, 0) if leading else 0)
                ready[slot.id] = (slot.address, max(0, limit - slot.in_flight - others))
        for cid in [cid for cid in route.containers if cid not in ready]:
            del route.containers[cid]
            out.append(f"uncontainer {route.id} {cid}")
            with contextlib.suppress(KeyError):
                self._gw.metrics.native_front_limit.remove(*route.label, cid)
        for cid, told in ready.items():
            if route.containers.get(cid) != told:
                route.containers[cid] = told
                out.append(f"container {route.id} {cid} {told[0]} {told[1]}")

    def _refresh(self, out: list[str]) -> None:
        """Read again what nears its expiry here, in the background: the front keeps serving meanwhile, and
        its callers are never handed here only because an entry lapsed."""
        gw = self._gw
        now = time.monotonic()
        for authorization, until in list(self._tokens.items()):
            if until - now < _REFRESH_AHEAD and authorization not in self._refreshing:  # one read at a time
                self._refreshing.add(authorization)
                asyncio.get_running_loop().create_task(self._refresh_token(authorization))
        for route in self._routes.values():
            for key, until in list(route.names.items()):
                if until - now >= _REFRESH_AHEAD:
                    continue
                version = None if key[2] == "-" else int(key[2])
                row = gw.deployments.peek(key[0], key[1], version)  # starts a read ahead of the expiry
                fresh = gw.deployments.plain_until(key[0], key[1], version)
                if row is not None and fresh > until and _same(row, route.deployment):
                    route.deployment = row  # the row read again: the express lane's plans go by its identity
                    route.names[key] = fresh
                    out.append(f"name {key[0]} {key[1]} {key[2]} {route.id} {int((fresh - now) * 1000)}")
                elif fresh <= now:
                    del route.names[key]

    async def _refresh_token(self, authorization: bytes) -> None:
        try:
            with contextlib.suppress(Exception):
                principal = await self._gw.auth.refresh(authorization)
                if authorization not in self._tokens:
                    return  # forgotten meanwhile
                until = self._gw.auth.cached_until(authorization)
                if principal is None or principal.role == "metrics":
                    del self._tokens[authorization]  # revoked (on another gateway): served here no more
                    self._link.send([f"untoken {authorization.hex()}"])
                elif until > time.monotonic():
                    self._tokens[authorization] = until
                    ms = int((until - time.monotonic()) * 1000)
                    self._link.send([f"token {authorization.hex()} {principal.workspace_id} {ms}"])
        finally:
            self._refreshing.discard(authorization)


def _same(row: Deployment, told: Deployment) -> bool:
    """Whether a deployment's row read again plans its calls as the one the front was told (same version and
    settings): a changed one is dropped by the cache's invalidation, and this keeps a lapsed one from
    standing in for it."""
    return row is told or (row.id == told.id and row.kind == told.kind and row.config == told.config)


def _plain(name: str) -> bool:
    """A name the front reads from a path as it is (nothing to decode, nothing that splits a control line)."""
    return name.isprintable() and not any(ch in name for ch in " %?/\x1f")
