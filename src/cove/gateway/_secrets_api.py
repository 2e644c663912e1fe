"""``/api/v1/secrets``: create, list and delete a workspace's secrets.

Values go in and never come out through this API: listings show names and
key names only. The only way out is the worker's order for a container that
names the secret (see :func:`resolve_secret_env`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import Field

from .._wire import api as wire
from .._wire.names import check_name
from ..exceptions import ConfigError, NotFound
from ..store import delete_secret, get_secrets, list_secrets, put_secret
from ._body import RequestBody
from ._deps import GatewayDep, PrincipalDep
from ._errors import ApiError
from ._patterns import OBJECT_NAME, ObjectName
from ._secretbox import SecretKeyError
from ._state import Gateway

router = APIRouter(prefix="/api/v1")

_MAX_VALUE_BYTES = 64 * 1024
_ENV_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_ENV_REST = _ENV_FIRST | frozenset("0123456789")
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"  # the same rule as _ENV_FIRST and _ENV_REST, for the published schema


class SecretRequest(RequestBody):
    name: str = Field(pattern=OBJECT_NAME)
    values: dict[Annotated[str, Field(pattern=ENV_NAME)], str] = Field(min_length=1, max_length=256)


def _view(row: Any) -> dict[str, Any]:
    return {"name": row.name, "keys": list(row.keys), "created_at": row.created_at, "updated_at": row.updated_at}


def _check_values(values: dict[str, str]) -> None:
    for key, value in values.items():
        if not key or key[0] not in _ENV_FIRST or not set(key) <= _ENV_REST:
            raise ApiError(422, f"{key!r} is not a valid environment variable name")
        if key.startswith("COVE_"):
            raise ApiError(422, f"{key!r}: names starting with COVE_ are reserved")
        if len(value.encode()) > _MAX_VALUE_BYTES or "\0" in value:
            raise ApiError(422, f"the value of {key} is over {_MAX_VALUE_BYTES} bytes or holds a NUL")


@router.post(
    "/secrets", status_code=201, summary="Create a secret, or replace its values", response_model=wire.SecretView
)
async def create_secret(body: SecretRequest, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    try:
        check_name("secret", body.name)
    except ConfigError as exc:
        raise ApiError(422, str(exc)) from None
    _check_values(body.values)
    row = await put_secret(gw.store, who, body.name, list(body.values), gw.secret_box.seal(body.values))
    return _view(row)


@router.get("/secrets", response_model=list[wire.SecretView])
async def list_all(gw: GatewayDep, who: PrincipalDep) -> list[dict[str, Any]]:
    return [_view(row) for row in await list_secrets(gw.store, who.workspace_id)]


@router.delete("/secrets/{name}", response_model=wire.SecretDeleted)
async def remove(name: ObjectName, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    try:
        await delete_secret(gw.store, who, name)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    return {"name": name, "deleted": True}


async def missing_secrets(gw: Gateway, workspace_id: str, names: Sequence[str]) -> list[str]:
    """Names that the workspace has no secret for (checked at deploy time)."""
    found = await get_secrets(gw.store, workspace_id, names)
    return [name for name in names if name not in found]


async def resolve_secret_env(gw: Gateway, workspace_id: str, names: Sequence[str]) -> dict[str, str]:
    """The decrypted variables of the named secrets, later names winning; raises LookupError if one is gone."""
    rows = await get_secrets(gw.store, workspace_id, names)
    env: dict[str, str] = {}
    for name in names:
        row = rows.get(name)
        if row is None:
            raise LookupError(f"secret {name!r} no longer exists")
        try:
            env.update(gw.secret_box.open(row.ciphertext))
        except SecretKeyError as exc:
            raise LookupError(f"secret {name!r}: {exc}") from None
    return env
