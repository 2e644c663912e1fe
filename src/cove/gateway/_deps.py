"""FastAPI dependencies shared by the control and worker routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from ..store import Principal
from ._errors import ApiError
from ._session_cookie import cookie_principal
from ._state import Gateway


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


GatewayDep = Annotated[Gateway, Depends(gateway)]


async def read_limited(request: Request, limit: int, what: str = "request body") -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit`` (never buffered past it)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"{what} exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def principal(
    request: Request, gw: GatewayDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The token's principal; without an ``Authorization`` header, the dashboard session's (its cookie)."""
    if authorization is None:
        from_cookie = await cookie_principal(gw, request)
        if from_cookie is not None:
            return from_cookie
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
