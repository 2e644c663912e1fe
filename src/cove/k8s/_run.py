"""Start the pool controller in the leading gateway, when the gateway runs under the Helm chart."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ._config import load_config
from ._decide import Waiting, pool_can_grow_for

log = logging.getLogger("cove.k8s")


class StoreTokens:
    """Worker tokens from the gateway's store, one per pod, named after it."""

    def __init__(self, store: Any, workspace: str = "default") -> None:
        self.store = store
        self.workspace = workspace

    async def issue(self, pod: str) -> str:
        _, secret = await self.store.create_token(self.workspace, pod, role="worker")
        return str(secret)

    async def revoke(self, pod: str) -> None:
        ws = await self.store.get_workspace(self.workspace)
        for token in await self.store.list_tokens(ws.id):
            if token.name == pod and token.revoked_at is None:
                await self.store.revoke_token_by_id(token.id)


def start_if_configured(scheduler: Any, store: Any) -> asyncio.Task[None] | None:
    """The controller's task when ``COVE_K8S_CONFIG`` names a configuration, else None (no Kubernetes)."""
    config = load_config()
    if config is None:
        return None
    from kubernetes import client  # the kubernetes extra
    from kubernetes import config as kube_config

    from ._controller import PoolController

    kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    controller = PoolController(config, scheduler, StoreTokens(store), client.CoreV1Api())
    scheduler.pool_states = lambda: controller.last_state  # GET /api/v1/worker-pools, `cove worker pools`
    default = config.pools[0].name if config.pools else ""
    scheduler.capacity_coming = lambda request: pool_can_grow_for(
        config.pools, Waiting(request.pool or default, request.cpu_millis, request.memory_mib, request.gpu_count)
    )
    return asyncio.create_task(controller.run_forever(), name="cove-pool-controller")
