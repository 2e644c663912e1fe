"""``/api/v1/images``: listing stored images, removing one, and garbage-collecting unused layers.

Images are shared by every workspace (the same spec is the same image), so
removing and collecting them is an admin's job, and neither ever touches an
image that an active deployment or a live container uses. A member lists
only the images its workspace asked for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from sqlalchemy import select

from .._wire import api as wire
from ..images import collect, layer_sizes, remove_image, stored_images, tree_size
from ..store import Container, Deployment, Principal
from ._deps import AdminDep, GatewayDep, PrincipalDep, WorkerDep
from ._errors import ApiError
from ._image_export import Exporter
from ._patterns import Sha256
from ._state import Gateway

router = APIRouter(prefix="/api/v1")


_EXPORTERS: dict[Path, Exporter] = {}


def exporter(gw: Gateway) -> Exporter:
    """One exporter per Cove home, made on first use (only gateways with remote workers need one)."""
    root = gw.settings.home.root
    if root not in _EXPORTERS:
        _EXPORTERS[root] = Exporter(gw.settings.home)
    return _EXPORTERS[root]


@dataclasses.dataclass
class _Usage:
    """Who uses which image: deployments (not deleted) and images with live containers."""

    deployments: dict[str, list[Deployment]]
    live: set[str]

    def in_use(self, image_id: str) -> bool:
        return image_id in self.live or any(d.state == "active" for d in self.deployments.get(image_id, []))

    def in_use_ids(self) -> set[str]:
        return {iid for iid in set(self.deployments) | self.live if self.in_use(iid)}

    def last_used(self, image_id: str, built_at: float) -> float:
        if self.in_use(image_id):
            return time.time()
        stamps = [d.stopped_at or d.created_at for d in self.deployments.get(image_id, [])]
        return max([built_at, *stamps])


async def _usage(gw: Gateway) -> _Usage:
    async with gw.store.session() as session:
        rows: Sequence[Deployment] = (await session.execute(select(Deployment))).scalars().all()
        live_deployments = set(
            (await session.execute(select(Container.deployment_id).where(Container.state != "exited"))).scalars()
        )
    by_image: dict[str, list[Deployment]] = {}
    live = set()
    for row in rows:
        if row.id in live_deployments:
            live.add(row.image_id)
        if row.state != "deleted":
            by_image.setdefault(row.image_id, []).append(row)
    # A build in flight has no deployment yet, but its image is about to be used.
    live |= gw.builder.building()
    return _Usage(by_image, live)


async def _visible_to(gw: Gateway, who: Principal) -> set[str] | None:
    """The images a workspace asked for (None: all, for admins and workers).

    Another workspace's image is not listed at all: its spec (packages,
    ``env_vars``) is that workspace's, and members never remove images.
    """
    if who.role in ("admin", "worker"):
        return None
    return await gw.store.image_ids_used_by(who.workspace_id)


@router.get(
    "/images",
    summary="Stored images: size, layers, last use and the deployments using them "
    "(a member sees its workspace's images, an admin all)",
    response_model=list[wire.StoredImage],
)
async def list_images(gw: GatewayDep, who: PrincipalDep) -> list[dict[str, Any]]:
    images, layers = await asyncio.gather(
        asyncio.to_thread(stored_images, gw.settings.home), asyncio.to_thread(layer_sizes, gw.settings.home)
    )
    visible = await _visible_to(gw, who)
    usage = await _usage(gw)
    out = []
    for image in images:
        if visible is not None and image.id not in visible:
            continue
        deployments = usage.deployments.get(image.id, [])
        spec = image.spec
        out.append(
            {
                **image.to_dict(),
                "layer_bytes": sum(layers.get(layer, 0) for layer in image.layer_ids),
                "system_packages": spec.get("system_packages", []),
                "python_packages": spec.get("python_packages", []),
                "in_use": usage.in_use(image.id),
                "last_used": usage.last_used(image.id, image.built_at),
                "deployments": [
                    {"name": d.name, "version": d.version, "state": d.state}
                    for d in deployments
                    if d.workspace_id == who.workspace_id
                ],
                "other_workspace_deployments": sum(1 for d in deployments if d.workspace_id != who.workspace_id),
            }
        )
    return out


async def _mark_removed(gw: Gateway, image_ids: Sequence[str]) -> None:
    for image_id in image_ids:
        row = await gw.store.get_image(image_id)
        if row is not None:
            await gw.store.put_image(image_id, row.spec, status="removed", path=None, python=None)


@router.delete(
    "/images/{image_id}",
    summary="Remove one image's environment (refused while it is in use)",
    response_model=wire.ImageRemoved,
)
async def delete_image(image_id: Sha256, gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    images = {image.id: image for image in await asyncio.to_thread(stored_images, gw.settings.home, False)}
    if image_id not in images:
        raise ApiError(404, f"image {image_id} is not stored here")
    usage = await _usage(gw)
    if usage.in_use(image_id):
        users = [f"{d.name} v{d.version}" for d in usage.deployments.get(image_id, []) if d.state == "active"]
        detail = f"deployments {', '.join(users)}" if users else "running containers"
        raise ApiError(409, f"image {image_id[:12]} is in use by {detail}; stop them first")
    path = images[image_id].path
    size = await asyncio.to_thread(tree_size, path)
    removed = await asyncio.to_thread(remove_image, gw.settings.home, image_id)
    await _mark_removed(gw, [image_id])
    exporter(gw).forget([image_id])
    return {"id": image_id, "removed": removed, "freed_bytes": size if removed else 0}


@router.post(
    "/images/gc", summary="Remove images, system layers and bases that nothing uses", response_model=wire.GcReport
)
async def gc_images(gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    usage = await _usage(gw)
    report = await asyncio.to_thread(collect, gw.settings.home, usage.in_use_ids(), [gw.builder.base_dir])
    await _mark_removed(gw, report.images)
    exporter(gw).forget(list(report.images))
    return report.to_dict()


@router.get(
    "/images/{image_id}/export",
    summary="A built image as a tar.gz archive with its sha256 (for workers that do not share this home)",
    response_class=FileResponse,
    responses={
        200: wire.binary(
            "application/gzip", "The part's archive", headers={"X-Cove-Sha256": "The sha256 of the archive"}
        )
    },
)
async def export_image(
    image_id: Sha256,
    gw: GatewayDep,
    who: WorkerDep,
    part: Annotated[str, Query(max_length=16, json_schema_extra={"pattern": r"^(env|base|layer[0-9]{1,4})$"})] = "env",
) -> FileResponse:
    try:
        archive = await exporter(gw).archive(image_id, part)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    except LookupError as exc:
        fetched = await gw.content.export(image_id, part)  # built on another gateway of the cluster
        if fetched is None:
            raise ApiError(404, str(exc)) from None
        archive = fetched
    return FileResponse(
        archive.path,
        media_type="application/gzip",
        headers={"X-Cove-Sha256": archive.sha256, "Cache-Control": "no-store"},
    )
