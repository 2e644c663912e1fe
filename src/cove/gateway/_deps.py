"""FastAPI dependencies shared by the control and worker routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from ..store import Principal
from ._errors import ApiError
from ._state import Gateway


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


GatewayDep = Annotated[Gateway, Depends(gateway)]


async def principal(gw: GatewayDep, authorization: Annotated[str | None, Header()] = None) -> Principal:
    return await gw.auth.principal(authorization)


PrincipalDep = Annotated[Principal, Depends(principal)]


async def worker_principal(who: PrincipalDep) -> Principal:
    if who.role not in ("worker", "admin"):
        raise ApiError(403, "this token may not act as a worker")
    return who


WorkerDep = Annotated[Principal, Depends(worker_principal)]


async def admin_principal(who: PrincipalDep) -> Principal:
    if who.role != "admin":
        raise ApiError(403, "this needs an admin token")
    return who


AdminDep = Annotated[Principal, Depends(admin_principal)]
