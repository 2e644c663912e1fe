"""Which versions of a deployment take calls: rollbacks without a rebuild, and traffic splits.

The live version is the newest active one (see ``deployment_view``'s ``live``).
A rollback makes a new version from an earlier one's code, image and config:
the images and code are already stored, so nothing is built, and the new
version takes calls the way any new version does. A traffic split shares the
calls between active versions by percentage until the next version is deployed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import Field, StringConstraints

from .._wire import api as wire
from .._wire.config import DeploymentConfig
from ..exceptions import ConfigError, Conflict, NotFound
from ..store import Principal, clear_split, put_split
from ._body import RequestBody
from ._capacity import check_capacity
from ._control import copied_version_view
from ._deployed_audit import check_deploy
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
        config = DeploymentConfig.from_dict({**source.config, "kind": source.kind})
        warnings = check_capacity(gw, config)
        await check_deploy_quota(gw, who, config)
        await check_deploy(gw, source.image_id)  # an image the [deploy] policy now refuses does not come back
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
            replace=True,  # the version goes back to the app it was deployed in, whichever holds the name now
            app_names=source.app_names,
        )
    except ConfigError as exc:  # stored by another release of Cove with options this one does not know
        raise ApiError(422, f"{name}/v{source.version}'s config cannot be deployed here: {exc}") from None
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return await copied_version_view(gw, who, row, created, warnings, source.version)


VersionKey = Annotated[str, StringConstraints(pattern=r"^v?[1-9][0-9]{0,8}$")]
Percent = Annotated[int, Field(ge=1, le=100)]


class TrafficRequest(RequestBody):
    weights: dict[VersionKey, Percent] = Field(
        description='Percent of the calls per version, adding up to 100: ``{"3": 90, "4": 10}`` (or ``"v3"``)',
        min_length=1,
        max_length=10,
    )

    def by_version(self) -> dict[int, int]:
        """The weights keyed by version number; a key that is not one is a ``ConfigError``."""
        out = {}
        for key, percent in self.weights.items():
            number = key.removeprefix("v")
            if not number.isdigit() or len(number) > 9:
                raise ConfigError(f"{key!r} is not a version number (like '3' or 'v3')")
            out[int(number)] = percent
        return out


@router.put(
    "/deployments/{name}/traffic",
    response_model=wire.TrafficSplitView,
    summary="Share a deployment's calls between active versions by percentage (a canary)",
)
async def put_traffic(name: str, body: TrafficRequest, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    try:
        weights = await put_split(gw.store, who, name, body.by_version())
    except ConfigError as exc:
        raise ApiError(422, str(exc)) from None
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    gw.deployments.invalidate()
    for version in weights:
        row = await gw.store.get_deployment(who.workspace_id, name, version)
        gw.scheduler.keep_warm(row)
    return {"name": name, "weights": weights}


@router.delete(
    "/deployments/{name}/traffic",
    response_model=wire.TrafficSplitView,
    summary="End a traffic split: the newest active version takes every call again",
)
async def clear_traffic(name: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    try:
        newest = await gw.store.get_deployment(who.workspace_id, name)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    await clear_split(gw.store, who, name)
    gw.deployments.invalidate()
    return {"name": name, "weights": {newest.version: 100}}
