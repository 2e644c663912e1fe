"""This gateway's row among the cluster's gateways, and the URLs of the others.

Gateways share no folder: one that lacks a content-addressed file (a code
archive, an image's archive, a blob) asks the others for it by hash. The list
of others is read with each lease renewal, never per request.
"""

from __future__ import annotations

import logging

from ..store import Store, announce_gateway, forget_gateway, live_gateway_urls

log = logging.getLogger("cove.cluster")


class Presence:
    """Renews this gateway's row and keeps the live peers' URLs at hand."""

    def __init__(self, store: Store, gateway_id: str, url: str, live_seconds: float) -> None:
        self.store = store
        self.gateway_id = gateway_id
        self.url = url
        self.live_seconds = live_seconds
        self.peers: list[str] = []

    async def renew(self) -> None:
        """Say this gateway is alive (and where), and learn who else is; a failure keeps the last list."""
        try:
            await announce_gateway(self.store, self.gateway_id, self.url)
            urls = await live_gateway_urls(self.store, self.live_seconds, but=self.gateway_id)
        except Exception as exc:
            log.warning("the cluster's gateways could not be read or renewed: %r", exc)
            return
        self.peers = [url for url in urls if url != self.url]

    async def leave(self) -> None:
        try:
            await forget_gateway(self.store, self.gateway_id)
        except Exception as exc:
            log.warning("this gateway's row could not be removed (it ages out): %r", exc)
