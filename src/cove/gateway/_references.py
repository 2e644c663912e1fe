"""Deploy-time checks of what a config names in its workspace: secrets and volumes."""

from __future__ import annotations

import asyncio

from cove._host.volumes import ensure_volume

from .._wire.config import DeploymentConfig
from ..store import Principal
from ._errors import ApiError
from ._secrets_api import missing_secrets
from ._state import Gateway


async def check_references(gw: Gateway, who: Principal, config: DeploymentConfig) -> None:
    """404 for a secret the workspace lacks (another workspace's is as good as none); volumes are made on use."""
    missing = await missing_secrets(gw, who.workspace_id, config.secrets)
    if missing:
        raise ApiError(404, f"secret(s) {', '.join(missing)} do not exist in workspace {who.workspace_name!r}")
    for _path, name in config.volumes:
        await asyncio.to_thread(ensure_volume, gw.settings.home.root, who.workspace_id, name)
