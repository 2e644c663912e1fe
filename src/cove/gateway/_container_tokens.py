"""Handing a container its workspace token, and taking it back when the container is gone.

The token goes out with the start order, next to the decrypted secrets
(``secret_env``): never stored in clear, never in a log line, and on the
crun engine never in ``config.json`` (it reaches the runner through a memfd).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .._wire.worker import ContainerSpec
from ..store import Store, create_container_token, revoke_container_tokens
from ._state import Gateway

log = logging.getLogger("cove.gateway")
TOKEN_ENV = "COVE_TOKEN"
_pending: set[asyncio.Task[None]] = set()


async def token_env(gw: Gateway, spec: ContainerSpec) -> dict[str, str]:
    """The variables that let the container's code call the gateway as its workspace.

    Sandboxes get none: they run code nobody reviewed (often generated), which
    should not act for the workspace.
    """
    if spec.kind == "sandbox":
        return {}
    return {TOKEN_ENV: await create_container_token(gw.store, spec.workspace_id, spec.container_id)}


def revoke_soon(gw: Gateway, container_id: str) -> None:
    """Revoke an exited container's token in the background (the event route must not wait on it)."""

    async def revoke() -> None:
        with contextlib.suppress(Exception):
            await revoke_container_tokens(gw.store, [container_id])
            gw.auth.forget()

    task = asyncio.get_running_loop().create_task(revoke())
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def revoke_stale(store: Store) -> None:
    """At start-up: tokens of containers that are no longer active stop working."""
    count = await revoke_container_tokens(store)
    if count:
        log.info("revoked %d tokens of containers that are gone", count)
