"""The pool controller's loop: observe pods and the scheduler, decide (:mod:`._decide`), act through the API.

It runs only in the gateway that holds the scheduler lease. Every pod it makes carries the release's labels and
an owner reference to the release's pools ConfigMap, so a new leader adopts them by label and ``helm uninstall``
removes them (and their token Secrets) through Kubernetes' garbage collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from ._config import ControllerConfig, PoolSpec
from ._decide import Action, ObservedPod, Waiting, decide
from ._pods import POOL_LABEL, pod_name, selector, token_secret, worker_pod

log = logging.getLogger("cove.k8s")


class SchedulerView(Protocol):
    """What the controller reads from, and asks of, the leader's scheduler."""

    def worker_views(self) -> list[dict[str, Any]]: ...

    def set_admin_state(self, worker_id: str, state: str) -> Any: ...


class TokenIssuer(Protocol):
    """Makes and revokes the worker token each pod gets."""

    async def issue(self, pod: str) -> str: ...

    async def revoke(self, pod: str) -> None: ...


def backlog(scheduler: Any, config: ControllerConfig) -> list[Waiting]:
    """Containers that wait for room now: one per deployment pool the scheduler could not place.

    A container that names no pool may go to any; the controller counts it against the first pool.
    """
    from ..scheduler import request_for

    default = config.pools[0].name if config.pools else ""
    out = []
    for pool in list(scheduler.pools.values()):
        if not pool.pending_reason or pool.quota_blocked:
            continue
        request = request_for(pool.config)
        out.append(Waiting(request.pool or default, request.cpu_millis, request.memory_mib, request.gpu_count))
    return out


class PoolController:
    """Creates, drains and deletes worker pods; one pass every ``interval_seconds``."""

    def __init__(self, config: ControllerConfig, scheduler: SchedulerView, tokens: TokenIssuer, api: Any) -> None:
        self.config = config
        self.scheduler = scheduler
        self.tokens = tokens
        self.api = api  # kubernetes.client.CoreV1Api
        self._idle_since: dict[str, float] = {}
        self._owner: dict[str, Any] | None = None
        self.last_state: dict[str, dict[str, int]] = {}

    async def run_forever(self) -> None:
        log.info("pool controller started for pools %s", ", ".join(p.name for p in self.config.pools))
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pool controller pass failed; trying again")
            await asyncio.sleep(self.config.interval_seconds)

    async def step(self, now: float | None = None) -> list[Action]:
        """One pass: observe, decide, act. Returns what it did."""
        now = time.time() if now is None else now
        pods = await asyncio.to_thread(
            self.api.list_namespaced_pod, self.config.namespace, label_selector=selector(self.config)
        )
        observed = self.observe(pods.items, now)
        waiting = backlog(self.scheduler, self.config)
        actions = decide(self.config.pools, observed, waiting, now)
        self.last_state = pool_states(self.config.pools, observed, actions)
        for action in actions:
            log.info(
                "pool %s: %s %s: %s",
                action.pool,
                action.kind,
                action.pod or "a worker pod",
                action.reason,
                extra={"pool": action.pool, "action": action.kind, "pod": action.pod},
            )
            await self.apply(action)
        return actions

    def observe(self, pods: list[Any], now: float) -> list[ObservedPod]:
        """Join the pods with the scheduler's workers (a worker's name is its pod's name)."""
        workers = {w["name"]: w for w in self.scheduler.worker_views() if w.get("alive")}
        out = []
        for pod in pods:
            name = pod.metadata.name
            worker = workers.get(name)
            containers = int(worker["containers"]) if worker else 0
            if worker and containers == 0:
                self._idle_since.setdefault(name, now)
            else:
                self._idle_since.pop(name, None)
            created = pod.metadata.creation_timestamp
            out.append(
                ObservedPod(
                    name=name,
                    pool=(pod.metadata.labels or {}).get(POOL_LABEL, ""),
                    phase=pod.status.phase or "Pending",
                    created_at=created.timestamp() if created else now,
                    deleting=pod.metadata.deletion_timestamp is not None,
                    registered=worker is not None,
                    admin_state=worker["state"] if worker else "active",
                    containers=containers,
                    idle_since=self._idle_since.get(name),
                )
            )
        return out

    async def apply(self, action: Action) -> None:
        spec = self.config.pool(action.pool)
        if action.kind == "create" and spec is not None:
            await self._create(spec)
        elif action.kind == "drain" and action.pod:
            worker = next((w for w in self.scheduler.worker_views() if w["name"] == action.pod), None)
            if worker is not None:
                # As `cove worker drain`: replacements start elsewhere first, so no request fails.
                self.scheduler.set_admin_state(worker["id"], "draining")
        elif action.kind == "delete" and action.pod:
            await self._delete(action.pod)

    async def _owner_reference(self) -> dict[str, Any] | None:
        if self._owner is None:
            with contextlib.suppress(Exception):
                cm = await asyncio.to_thread(
                    self.api.read_namespaced_config_map, f"{self.config.fullname}-pools", self.config.namespace
                )
                self._owner = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": cm.metadata.name,
                    "uid": cm.metadata.uid,
                }
        return self._owner

    async def _create(self, spec: PoolSpec) -> None:
        name = pod_name(self.config, spec)
        owner = await self._owner_reference()
        pod = await asyncio.to_thread(
            self.api.create_namespaced_pod, self.config.namespace, worker_pod(self.config, spec, name, owner)
        )
        pod_owner = {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": pod.metadata.uid}
        token = await self.tokens.issue(name)
        await asyncio.to_thread(
            self.api.create_namespaced_secret,
            self.config.namespace,
            token_secret(self.config, spec, name, token, pod_owner),
        )

    async def _delete(self, pod: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            await asyncio.to_thread(self.api.delete_namespaced_pod, pod, self.config.namespace, grace_period_seconds=30)
        except ApiException as exc:
            if exc.status != 404:
                raise
        self._idle_since.pop(pod, None)
        await self.tokens.revoke(pod)


def pool_states(
    pools: tuple[PoolSpec, ...], observed: list[ObservedPod], actions: Sequence[Action] = ()
) -> dict[str, dict[str, int]]:
    """Each pool's pods by state (for the API, metrics and `cove worker list`).

    ``desired`` is the number of workers the pass aims for: the live pods that stay (not draining, not drained
    or deleted by this pass) plus the ones it creates.
    """
    out = {}
    for spec in pools:
        mine = [p for p in observed if p.pool == spec.name and not p.deleting and p.phase in ("Pending", "Running")]
        mine_actions = [a for a in actions if a.pool == spec.name]
        leaving = {a.pod for a in mine_actions if a.kind in ("drain", "delete")}
        staying = [p for p in mine if p.admin_state != "draining" and p.name not in leaving]
        out[spec.name] = {
            "min": spec.min_workers,
            "max": spec.max_workers,
            "desired": len(staying) + sum(1 for a in mine_actions if a.kind == "create"),
            "pending": sum(1 for p in mine if not p.registered),
            "ready": sum(1 for p in mine if p.registered and p.admin_state != "draining"),
            "draining": sum(1 for p in mine if p.registered and p.admin_state == "draining"),
        }
    return out
