"""Requests under ``/asgi/``: which web app they are for, who may reach it, and what of them the app sees.

Every gateway serves them: a follower relays to the containers it sees ready,
as for endpoints. Auth works as for endpoints (``_invoke.find_deployment``), with one rule of
its own: a web app never sees a Cove token. A valid token in
``Authorization`` picks the workspace and is taken off before the request is
relayed. An app deployed with ``authorized=False`` may use ``Authorization``
for itself: a header that is not a Cove token reaches it as sent (and the
call goes to the default workspace, as any call without a token does).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from .._net.proxy import HOP_BY_HOP
from .._wire import webapp
from .._wire.defaults import stored
from .._wire.urls import ASGI_PREFIX
from ..scheduler import Lease
from ..store import Deployment
from ._errors import ApiError
from ._invoke import Leases, find_deployment, waiting_errors
from ._state import Gateway

PREFIX = ASGI_PREFIX
# The caller's headers that describe its own request to the gateway; the relayed request has its own.
_NOT_RELAYED = frozenset(
    {
        b"content-length",
        b"expect",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-accept",
    }
)


@dataclasses.dataclass(frozen=True)
class Route:
    """``/asgi/NAME[/vN]REST``: the app's name, its pinned version, where it is mounted and the path below."""

    name: str
    version: int | None
    mount: str
    rest: str


def parse_route(path: str) -> Route:
    """The route of a path under ``/asgi/``; a 404 when it names no app."""
    name, _, rest = path[len(PREFIX) :].partition("/")
    if not name:
        raise ApiError(404, f"no web app in {path!r}; use {PREFIX}NAME/ or {PREFIX}NAME/vN/")
    mount = PREFIX + name
    rest = path[len(mount) :]
    segment = rest[1:].partition("/")[0]
    if segment[:1] == "v" and segment[1:].isdigit():
        mount += "/" + segment
        return Route(name, int(segment[1:]), mount, path[len(mount) :])
    return Route(name, None, mount, rest)


@dataclasses.dataclass(frozen=True)
class Target:
    """The deployment a request goes to, in the caller's workspace, and whether its ``Authorization`` is the app's."""

    workspace: str
    deployment: Deployment
    app_authorization: bool


async def resolve(gw: Gateway, scope: dict[str, Any], route: Route) -> Target:
    """Authenticate the caller and find the app (the serving version unless pinned)."""
    authorization = header(scope, b"authorization")
    app_authorization = authorization is None
    try:
        workspace, deployment = await find_deployment(gw, authorization, route.name, route.version, "asgi")
    except ApiError as exc:
        if exc.status != 401 or authorization is None:
            raise
        try:  # not a Cove token: the app's own, if the app is open to callers without one
            workspace, deployment = await find_deployment(gw, None, route.name, route.version, "asgi")
        except ApiError as again:
            raise (exc if again.status == 401 else again) from None
        app_authorization = True
    if route.version is None and gw.cluster.leading:
        deployment = gw.scheduler.serving_version(deployment)
    elif route.version is None:
        deployment = await gw.follower.serving_version(deployment)
    return Target(workspace, deployment, app_authorization)


def header(scope: dict[str, Any], name: bytes) -> bytes | None:
    """The first value of a request header (``name`` in lower case)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def relayed_headers(scope: dict[str, Any], route: Route, target: Target) -> list[tuple[bytes, bytes]]:
    """The caller's end-to-end headers as the app gets them (repeats kept, in order), and the gateway's own."""
    out: list[tuple[bytes, bytes]] = []
    for key, value in scope["headers"]:
        name = bytes(key).lower()
        if name == b"host":
            out.append((name, bytes(value)))  # the app builds its URLs (redirects, /docs) on the caller's host
        elif name in HOP_BY_HOP or name in _NOT_RELAYED or name.startswith(webapp.PRIVATE_PREFIX):
            continue
        elif name != b"authorization" or target.app_authorization:
            out.append((name, bytes(value)))
    out.append((webapp.ROOT_PATH, route.mount.encode()))
    client = scope.get("client")
    if client:
        out.append((webapp.CLIENT, f"{client[0]}:{client[1]}".encode()))
    secure = scope.get("scheme") in ("https", "wss")
    out.append((webapp.SCHEME, b"https" if secure else b"http"))
    return out


def request_head(method: str, scope: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> bytes:
    """The relayed request's line and headers, ending with the blank line."""
    target: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string") or b""
    if query:
        target += b"?" + query
    lines = [b"%s %s HTTP/1.1\r\n" % (method.encode("latin-1"), target)]
    lines += [b"%s: %s\r\n" % pair for pair in headers]
    lines.append(b"\r\n")
    return b"".join(lines)


def slots_of(gw: Gateway) -> Leases:
    """Where this gateway gets container slots: its scheduler when it leads, else its mirror of ready containers."""
    return gw.scheduler if gw.cluster.leading else gw.follower


async def acquire(gw: Gateway, deployment: Deployment) -> tuple[Lease, float, float | None]:
    """A slot on a ready container, waited for within the deployment's timeout; the timeout and its deadline.

    HTTP requests and WebSockets of a web app wait the same way (and fail with the same
    503/504 answers); what follows the wait keeps to the same deadline. A gateway that
    does not lead relays to the containers it sees ready itself, asking the leader for
    one when none is (``ForwardToLeader`` when it cannot: no leader answers, or the
    containers listen where only the leader connects); release with ``slots_of(gw)``.
    """
    timeout = float(stored(deployment.config, deployment.kind, "timeout"))
    deadline = None if timeout < 0 else asyncio.get_running_loop().time() + timeout
    with waiting_errors(gw.scheduler, deployment, timeout), gw.deadlines.at(deadline):
        lease = await slots_of(gw).acquire(deployment)
    return lease, timeout, deadline
