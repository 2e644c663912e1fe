"""What images were built from, and which live deployments run a package the reservoir now flags.

``GET /api/v1/images/{id}/packages`` answers the package manifest the builder
stored with the image (the same visibility as the image itself: a workspace
sees the images it asked for). ``POST /api/v1/images/audit`` (admins) judges
the images of every active deployment by this home's reservoir (its
advisories and license policy, see ``cove.reservoir.deployed``) and records
an event for each deployment that runs a flagged package, in its workspace,
so ``cove events`` shows it beside the deployment's other events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from .._wire import api as wire
from ..images import packages_of
from ..reservoir.deployed import audit_images
from ..reservoir.store import Store as ReservoirStore
from ..store import Deployment
from ._control import may_see_image
from ._deps import AdminDep, GatewayDep, PrincipalDep
from ._errors import ApiError
from ._patterns import Sha256
from ._state import Gateway

router = APIRouter(prefix="/api/v1")

EVENT_KIND = "package-audit"


async def _packages(gw: Gateway, image_id: str) -> dict[str, Any] | None:
    row = await gw.store.get_image(image_id)
    if row is None or not row.path or row.status != "ready":
        return None
    return await asyncio.to_thread(packages_of, Path(row.path))


@router.get(
    "/images/{image_id}/packages",
    summary="The Python distributions and Debian packages an image holds, recorded when it was built",
    response_model=wire.ImagePackages,
    response_model_exclude_unset=True,
)
async def image_packages(image_id: Sha256, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    if not await may_see_image(gw, who, image_id):
        raise ApiError(404, f"image {image_id} is not known")
    manifest = await _packages(gw, image_id)
    if manifest is None:
        raise ApiError(404, f"image {image_id} is not stored on this gateway")
    return {"id": image_id, **manifest}


def _reservoir_audit(root: Path, images: Sequence[dict[str, Any]]) -> dict[str, Any]:
    store = ReservoirStore(root)
    try:
        return audit_images(store, images)
    finally:
        store.close()


@router.post(
    "/images/audit",
    summary="Active deployments whose images hold a package that the reservoir's advisories or policy flag",
    response_model=wire.DeployedAudit,
)
async def audit_deployed(gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    async with gw.store.session() as session:
        rows: Sequence[Deployment] = (
            (await session.execute(select(Deployment).where(Deployment.state == "active"))).scalars().all()
        )
    by_image: dict[str, list[Deployment]] = {}
    for row in rows:
        by_image.setdefault(row.image_id, []).append(row)
    images = [
        {
            "image_id": image_id,
            "packages": await _packages(gw, image_id),
            "deployments": [{"workspace_id": d.workspace_id, "name": d.name, "version": d.version} for d in users],
        }
        for image_id, users in sorted(by_image.items())
    ]
    report = await asyncio.to_thread(_reservoir_audit, gw.settings.home.root / "reservoir", images)
    for image in report["flagged"]:
        names = sorted({f"{f['name']} {f['version']}" for f in image["findings"]})
        advisories = sorted({a for f in image["findings"] for a in f["advisories"]})
        for deployment in by_image[image["image_id"]]:
            gw.scheduler.events.of(
                deployment,
                EVENT_KIND,
                f"image {image['image_id'][:12]} holds flagged package(s): {', '.join(names)}",
                image_id=image["image_id"],
                advisories=advisories,
                rules_serial=report["rules_serial"],
            )
    gw.scheduler.events.cluster(
        EVENT_KIND,
        f"audited {report['checked_images']} deployed image(s): {len(report['flagged'])} flagged",
        rules_serial=report["rules_serial"],
        flagged=[image["image_id"] for image in report["flagged"]],
    )
    return report
