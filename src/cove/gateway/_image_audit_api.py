"""What images were built from, and which live deployments run a package the reservoir now flags.

``GET /api/v1/images/{id}/packages`` answers the package manifest the builder
stored with the image (the same visibility as the image itself: a workspace
sees the images it asked for). ``GET /api/v1/reservoir/audit/deployed``
(admins) answers the report that :mod:`._deployed_audit` keeps on the images
of every active deployment, judged by this home's reservoir (its advisories
and policy, see ``cove.reservoir.deployed``) and made again whenever those
rules or the deployments change; ``POST /api/v1/images/audit`` judges them
again at once and records a ``package-audit`` event for each flagged
deployment, in its workspace, so ``cove events`` shows it beside the
deployment's other events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from .._wire import api as wire
from ._background import running
from ._control import may_see_image
from ._deployed_audit import DeployedAuditor, manifest_of
from ._deps import AdminDep, GatewayDep, PrincipalDep
from ._errors import ApiError
from ._patterns import Sha256


@contextlib.asynccontextmanager
async def _keep_auditing(app: Any) -> AsyncIterator[None]:
    """While the gateway runs: the deployed images re-audited when the reservoir's rules change."""
    auditor = app.state.deployed_audit = DeployedAuditor(app.state.gateway)
    async with running(asyncio.create_task(auditor.watch(), name="cove-deployed-audit")):
        yield


router = APIRouter(prefix="/api/v1", lifespan=_keep_auditing)


@router.get(
    "/images/{image_id}/packages",
    summary="The Python distributions and Debian packages an image holds, recorded when it was built",
    response_model=wire.ImagePackages,
    response_model_exclude_unset=True,
)
async def image_packages(image_id: Sha256, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    if not await may_see_image(gw, who, image_id):
        raise ApiError(404, f"image {image_id} is not known")
    manifest = await manifest_of(gw, image_id)
    if manifest is None:
        raise ApiError(404, f"image {image_id} is not stored on this gateway")
    return {"id": image_id, **manifest}


@router.post(
    "/images/audit",
    summary="Active deployments whose images hold a package that the reservoir's advisories or policy flag",
    response_model=wire.DeployedAudit,
)
async def audit_deployed(request: Request, gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    """Judged again now, with a ``package-audit`` event for every flagged deployment."""
    auditor: DeployedAuditor = request.app.state.deployed_audit
    return await auditor.current(force=True)


@router.get(
    "/reservoir/audit/deployed",
    summary="Active deployments whose images hold a package that the reservoir's advisories or policy flag, "
    "as last judged (again only if the rules or the deployments changed since)",
    response_model=wire.DeployedAudit,
)
async def deployed_report(request: Request, gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    auditor: DeployedAuditor = request.app.state.deployed_audit
    return await auditor.current()
