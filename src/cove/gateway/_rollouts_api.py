"""Which version of a deployment is live, and going back to an earlier one without a rebuild.

The live version is the newest active one (see ``deployment_view``'s ``live``).
A rollback makes a new version from an earlier one's code, image and config:
the images and code are already stored, so nothing is built, and the new
version takes calls the way any new version does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from .._wire import api as wire
from .._wire.config import DeploymentConfig
from ..exceptions import Conflict, NotFound
from ..store import Principal
from ._body import RequestBody
from ._control import deployment_view
from ._deps import GatewayDep, PrincipalDep
from ._errors import ApiError
from ._quotas_api import check_deploy_quota
from ._state import Gateway

router = APIRouter(prefix="/api/v1")


class RollbackRequest(RequestBody):
    to: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="The version to go back to; left out, the one before the live version.",
    )


@router.post(
    "/deployments/{name}/rollback",
    response_model=wire.DeploymentRolledBack,
    summary="Make an earlier version live again (a new version with its code, image and config; no rebuild)",
)
async def rollback(name: str, body: RollbackRequest, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    return await _rollback(gw, who, name, body.to)


async def _rollback(gw: Gateway, who: Principal, name: str, to: int | None) -> dict[str, Any]:
    try:
        source, app = await gw.store.rollback_source(who, name, to)
        # Quotas and workers may have changed since that version was deployed.
        await check_deploy_quota(gw, who, DeploymentConfig.from_dict({**source.config, "kind": source.kind}))
        row, created = await gw.store.create_deployment(
            who,
            name=name,
            app=app,
            kind=source.kind,
            module=source.module,
            function=source.function,
            image_id=source.image_id,
            code_hash=source.code_hash,
            config=source.config,
            ephemeral=source.ephemeral,
            rollback_of=source.version,
        )
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    gw.deployments.invalidate()
    if created:
        gw.scheduler.keep_warm(row)
    return {**deployment_view(gw, row, live=True), "created": created, "source_version": source.version}
