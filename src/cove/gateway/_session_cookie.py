"""The dashboard's session cookie as a way to call the control API, and its defence against cross-site requests.

A browser signed in to the dashboard sends the cookie instead of an
``Authorization`` header, so every page's call passes the same checks as the
token the session was opened with and is audited under that token's id. The
cookie is ``SameSite=Strict``, and on top of that a request that changes state
must carry an ``Origin`` naming this gateway: a page of another site can
neither send the cookie nor pass the check, whatever the browser.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

from ..store import Principal
from ._errors import ApiError
from ._state import Gateway

SESSION_COOKIE = "cove_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_same_origin(request: Request, public_url: str) -> None:
    """Refuse (403) a state-changing request whose ``Origin`` is missing or names another site.

    This gateway's origin is the one the request was addressed to (scheme and ``Host``) or the
    configured public URL (a gateway behind a proxy is reached under that name).
    """
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        raise ApiError(403, "a request made with the session cookie must carry an Origin header naming this gateway")
    host = request.headers.get("host", "")
    allowed = {f"{request.url.scheme}://{host}".lower(), _origin_of(public_url)}
    if origin.lower() not in allowed:
        raise ApiError(403, f"cross-site request refused: Origin {origin!r} is not this gateway")


async def cookie_principal(gw: Gateway, request: Request) -> Principal | None:
    """Who the request's session cookie speaks for, checked for its origin; None without a cookie."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    check_same_origin(request, gw.settings.public_url)
    return await gw.auth.session(secret)
