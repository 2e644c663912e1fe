"""The worker's side of the gateway's worker API; HTTP only, never the database."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from .._wire.worker import ContainerEvent, Order, WeightsReport


class WorkerUnknown(Exception):
    """The gateway answered 404 for this worker id: it forgot us and we must register again."""


class GatewayClient:
    """Thin typed wrappers around the worker endpoints of the gateway."""

    def __init__(self, base_url: str, token: str, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30.0, connect=5.0),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _post(self, path: str, body: Mapping[str, Any], *, worker_scoped: bool = True) -> httpx.Response:
        reply = await self.http.post(path, json=body)
        return self._check(reply, worker_scoped)

    @staticmethod
    def _check(reply: httpx.Response, worker_scoped: bool) -> httpx.Response:
        if worker_scoped and reply.status_code == 404:
            raise WorkerUnknown(reply.text[:200])
        reply.raise_for_status()
        return reply

    async def register(self, body: Mapping[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = (await self._post("/api/v1/workers/register", body, worker_scoped=False)).json()
        return data

    async def orders(self, worker_id: str, wait: float) -> list[Order]:
        reply = await self.http.get(
            f"/api/v1/workers/{worker_id}/orders", params={"wait": wait}, timeout=httpx.Timeout(wait + 15, connect=5)
        )
        return [Order.from_dict(item) for item in self._check(reply, True).json().get("orders", [])]

    async def events(self, worker_id: str, events: Sequence[ContainerEvent]) -> None:
        await self._post(f"/api/v1/workers/{worker_id}/events", {"events": [e.to_dict() for e in events]})

    async def heartbeat(
        self,
        worker_id: str,
        containers: Iterable[str],
        gpu: Mapping[str, Any] | None = None,
        weights: WeightsReport | None = None,
    ) -> list[str]:
        body = {"containers": sorted(containers), **(gpu or {})}
        if weights is not None and (weights.held or weights.fetching):
            body["weights"] = weights.to_dict()
        reply = await self._post(f"/api/v1/workers/{worker_id}/heartbeat", body)
        stop = reply.json().get("stop", []) if reply.content else []
        return [str(item) for item in stop]

    async def logs(self, container_id: str, lines: Sequence[Mapping[str, Any]]) -> None:
        reply = await self.http.post(f"/api/v1/containers/{container_id}/logs", json={"lines": list(lines)})
        reply.raise_for_status()

    async def code(self, code_hash: str) -> bytes:
        reply = await self.http.get(f"/api/v1/code/{code_hash}", timeout=httpx.Timeout(300.0, connect=5.0))
        reply.raise_for_status()
        return reply.content

    async def image(self, image_id: str) -> dict[str, Any]:
        reply = await self.http.get(f"/api/v1/images/{image_id}")
        reply.raise_for_status()
        data: dict[str, Any] = reply.json()
        return data

    async def export(self, image_id: str, part: str, dest: Path) -> None:
        """Stream one part of a built image into ``dest``; refuse it unless its sha256 matches the gateway's."""
        digest = hashlib.sha256()
        async with self.http.stream(
            "GET",
            f"/api/v1/images/{image_id}/export",
            params={"part": part},
            timeout=httpx.Timeout(600.0, connect=5.0),
        ) as reply:
            if reply.status_code != 200:
                await reply.aread()
                reply.raise_for_status()
            expected = reply.headers.get("x-cove-sha256", "")
            with dest.open("wb") as out:
                async for chunk in reply.aiter_bytes(1024 * 1024):
                    digest.update(chunk)
                    out.write(chunk)
        if not expected or digest.hexdigest() != expected:
            raise ValueError(
                f"image {image_id[:12]} part {part} arrived with sha256 {digest.hexdigest()[:12]}, "
                f"not the {expected[:12] or 'missing'} the gateway announced; refusing it"
            )
