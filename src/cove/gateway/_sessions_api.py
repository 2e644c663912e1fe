"""The dashboard's sign-in: an API token pasted once becomes an HttpOnly, SameSite=Strict session cookie.

The session is stored server-side as the hash of its cookie and speaks for the
token (see ``_session_cookie``); signing out revokes it, and revoking the token
ends it too. An admin's session may switch the workspace it acts in: the
control API then answers as if the admin's token belonged to that workspace.
These routes serve the dashboard's pages and are not part of the published API.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from pydantic import Field

from ..exceptions import NotFound
from ..store import (
    Principal,
    close_session,
    is_container_token,
    list_workspaces,
    open_session,
    switch_session_workspace,
)
from ._body import RequestBody
from ._deps import GatewayDep
from ._errors import ApiError
from ._session_cookie import SESSION_COOKIE, check_same_origin
from ._state import Gateway

router = APIRouter(prefix="/dashboard/session", include_in_schema=False)

SESSION_SECONDS = 12 * 3600  # a working day: then the browser asks for the token again
SIGN_IN_ROLES = frozenset({"admin", "user"})


class SignIn(RequestBody):
    token: str = Field(min_length=1, max_length=200)


class SwitchWorkspace(RequestBody):
    workspace: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")


async def _view(gw: Gateway, who: Principal) -> dict[str, Any]:
    view: dict[str, Any] = {
        "signed_in": True,
        "token_id": who.token_id,
        "workspace": who.workspace_name,
        "role": who.role,
    }
    if who.role == "admin":
        view["workspaces"] = [w.name for w in await list_workspaces(gw.store)]
    return view


def _current(request: Request) -> str:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise ApiError(401, "not signed in")
    return secret


@router.post("")
async def sign_in(body: SignIn, request: Request, response: Response, gw: GatewayDep) -> dict[str, Any]:
    """Check the token like any API call would, then open a session for it and set its cookie."""
    check_same_origin(request, gw.settings.public_url)
    try:
        who = await gw.auth.principal(f"Bearer {body.token.strip()}")
    except ApiError as exc:
        raise ApiError(401, "that token is not valid: it may be mistyped or revoked") from exc
    if who.role not in SIGN_IN_ROLES or await is_container_token(gw.store, who.token_id):
        raise ApiError(403, f"a {who.role} token cannot sign in to the dashboard: use a user or admin token")
    _, secret = await open_session(gw.store, who, SESSION_SECONDS)
    secure = request.url.scheme == "https" or gw.settings.public_url.startswith("https:")
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    return await _view(gw, who)


@router.get("")
async def current(request: Request, gw: GatewayDep) -> dict[str, Any]:
    """Who the browser is signed in as; ``signed_in`` false (not a 401) when it is not, which a page asks first."""
    secret = request.cookies.get(SESSION_COOKIE)
    try:
        who = await gw.auth.session(secret) if secret else None
    except ApiError:
        who = None
    return {"signed_in": False} if who is None else await _view(gw, who)


@router.delete("")
async def sign_out(request: Request, response: Response, gw: GatewayDep) -> dict[str, Any]:
    """Revoke the session at once (here; other gateways within their token cache's lifetime) and drop the cookie."""
    check_same_origin(request, gw.settings.public_url)
    secret = _current(request)
    who = await gw.auth.session(secret)
    await close_session(gw.store, who, secret)
    gw.auth.forget()
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return {"signed_out": True}


@router.put("/workspace")
async def switch_workspace(
    body: Annotated[SwitchWorkspace, Body()], request: Request, gw: GatewayDep
) -> dict[str, Any]:
    """An admin's session acts in another workspace from now on (audited there)."""
    check_same_origin(request, gw.settings.public_url)
    secret = _current(request)
    who = await gw.auth.session(secret)
    if who.role != "admin":
        raise ApiError(403, "only an admin can switch workspaces")
    try:
        ws = await switch_session_workspace(gw.store, who, secret, body.workspace)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    gw.auth.forget()
    return await _view(gw, Principal(who.token_id, ws.id, ws.name, who.role))
