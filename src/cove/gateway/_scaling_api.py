"""Scale limits of a deployment: a new version that changes only its autoscaler settings, nothing rebuilt.

Versions are immutable, so changing ``min_containers`` or ``max_containers``
makes a new version with the live version's image, code and config except
those settings (as a rollback makes one from an earlier version). The new
version takes the calls the way any new version does: once its first
container is ready, or at once when it keeps none warm; the older version
loses its ``min_containers`` floor and scales to zero. The audit log records
``deployment.scale`` with the settings given.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from .._wire import api as wire
from .._wire.config import DeploymentConfig
from .._wire.policies import QueueDepthAutoscaler
from ..exceptions import ConfigError, Conflict, NotFound
from ..store import Principal, find_app
from ._body import RequestBody
from ._capacity import check_capacity
from ._control import copied_version_view
from ._deps import GatewayDep, PrincipalDep
from ._errors import ApiError
from ._quotas_api import check_deploy_quota
from ._state import Gateway

router = APIRouter(prefix="/api/v1")

AUTOSCALER_FIELDS = (
    "min_containers",
    "max_containers",
    "tasks_per_container",
    "buffer_containers",
    "scale_down_window",
)


class ScalingRequest(RequestBody):
    """The settings to change; a field left out keeps the live version's value."""

    min_containers: int | None = Field(default=None, description="Containers kept running with no work at all.")
    max_containers: int | None = Field(default=None, description="The most containers at once.")
    tasks_per_container: int | None = Field(default=None, description="In-flight inputs per container aimed for.")
    buffer_containers: int | None = Field(default=None, description="Idle containers kept ready while there is work.")
    scale_down_window: float | None = Field(
        default=None, description="Seconds the wanted count must stay low before containers stop."
    )
    keep_warm_seconds: float | None = Field(
        default=None, description="How long an idle container waits for the next call; -1 keeps it forever."
    )

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


def scaling_of(config: DeploymentConfig) -> dict[str, Any]:
    """The settings this route changes, as a deployment has them."""
    return {**config.autoscaler.to_dict(), "keep_warm_seconds": config.keep_warm_seconds}


def rescaled(config: DeploymentConfig, changes: dict[str, Any]) -> DeploymentConfig:
    """``config`` with ``changes`` applied, checked like a deploy's (422 for a value out of range)."""
    autoscaler = {**config.autoscaler.to_dict(), **{k: v for k, v in changes.items() if k in AUTOSCALER_FIELDS}}
    keep_warm = changes.get("keep_warm_seconds", config.keep_warm_seconds)
    return config.replace(
        autoscaler=QueueDepthAutoscaler(**autoscaler),
        keep_warm_seconds=DeploymentConfig(kind=config.kind, keep_warm_seconds=keep_warm).keep_warm_seconds,
    )


@router.patch(
    "/deployments/{name}/scaling",
    response_model=wire.DeploymentScaled,
    summary="Change a deployment's scale limits (a new version with the same code, image and config; no rebuild)",
)
async def scale(name: str, body: ScalingRequest, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    changes = body.given()
    if not changes:
        raise ApiError(422, f"give at least one of {', '.join((*AUTOSCALER_FIELDS, 'keep_warm_seconds'))}")
    return await _scale(gw, who, name, changes)


async def _scale(gw: Gateway, who: Principal, name: str, changes: dict[str, Any]) -> dict[str, Any]:
    try:
        live = await gw.store.get_deployment(who.workspace_id, name)
        stored = DeploymentConfig.from_dict({**live.config, "kind": live.kind})
        config = rescaled(stored, changes)
        warnings = check_capacity(gw, config)
        await check_deploy_quota(gw, who, config)
        app = await find_app(gw.store, who.workspace_id, live.app_id)
        row, created = await gw.store.create_deployment(
            who,
            name=name,
            app=app.name if app is not None else name,
            kind=live.kind,
            module=live.module,
            function=live.function,
            image_id=live.image_id,
            code_hash=live.code_hash,
            config=config.to_dict(),
            ephemeral=live.ephemeral,
            app_names=live.app_names,
            scaled=changes,
        )
    except ConfigError as exc:
        raise ApiError(422, str(exc)) from None
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return {
        **await copied_version_view(gw, who, row, created, warnings, live.version),
        "scaling": scaling_of(config),
    }
