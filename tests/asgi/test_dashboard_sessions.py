"""The dashboard's sign-in: cookie flags, sessions stored hashed, revocation, the Origin check, workspaces.

The gateway's app with its lifespan (store, scheduler) in this process, over httpx's ASGITransport.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cove._host.home import Home
from cove.gateway import GatewaySettings, create_app

BASE = "http://cove.test"
ORIGIN = {"Origin": BASE}


class Gateway:
    """The app running, its database file and its admin token."""

    def __init__(self, app: Any, db: Path, admin: str) -> None:
        self.app, self.db, self.admin = app, db, admin

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE)

    async def token(self, workspace: str, role: str = "user") -> str:
        async with self.client() as c:
            made = await c.post(
                "/api/v1/tokens",
                json={"name": f"{workspace}-{role}", "workspace": workspace, "role": role},
                headers={"Authorization": f"Bearer {self.admin}"},
            )
            assert made.status_code == 201, made.text
            return str(made.json()["token"])


def run(test: Callable[[Gateway], Awaitable[None]], tmp_path: Path) -> None:
    home = tmp_path / "cove"
    db = home / "cove.db"
    app = create_app(GatewaySettings(home=Home(home), database_url=f"sqlite+aiosqlite:///{db}"))

    async def main() -> None:
        async with app.api.router.lifespan_context(app.api):
            admin = await app.api.state.gateway.store.bootstrap()
            assert admin
            await test(Gateway(app, db, admin))

    asyncio.run(main())


async def sign_in(c: httpx.AsyncClient, token: str) -> httpx.Response:
    reply = await c.post("/dashboard/session", json={"token": token}, headers=ORIGIN)
    assert reply.status_code == 200, reply.text
    return reply


def test_sign_in_sets_a_strict_httponly_cookie_that_speaks_for_the_token(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        async with gw.client() as c:
            reply = await sign_in(c, gw.admin)
            assert reply.json()["role"] == "admin" and reply.json()["workspace"] == "default"
            cookie = reply.headers["set-cookie"]
            flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
            assert {"httponly", "path", "max-age"} <= flags and "samesite=strict" in cookie.lower(), cookie
            assert "secure" not in flags  # plain http here: a Secure cookie would never come back
            secret = c.cookies["cove_session"]
            assert secret not in gw.admin and gw.admin not in secret
            who = await c.get("/api/v1/whoami")  # no Authorization header: the cookie
            assert who.status_code == 200 and who.json()["role"] == "admin", who.text
            assert (await c.get("/dashboard/session")).json()["workspaces"] == ["default"]
        # Only the hash is stored: the database never holds the cookie's value.
        assert secret.encode() not in gw.db.read_bytes()
        with sqlite3.connect(gw.db) as db:
            assert db.execute("SELECT count(*) FROM sessions WHERE revoked_at IS NULL").fetchone() == (1,)

    run(test, tmp_path)


def test_a_wrong_token_is_refused_with_a_clear_message_and_no_cookie(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        async with gw.client() as c:
            reply = await c.post("/dashboard/session", json={"token": "cove_wrong"}, headers=ORIGIN)
            assert reply.status_code == 401
            assert "not valid" in reply.json()["error"]["message"]
            assert "set-cookie" not in reply.headers
            worker = await gw.token("default", "worker")
            refused = await c.post("/dashboard/session", json={"token": worker}, headers=ORIGIN)
            assert refused.status_code == 403 and "worker token" in refused.json()["error"]["message"]
            missing = await c.post("/dashboard/session", json={}, headers=ORIGIN)
            assert missing.status_code == 422 and "token" in missing.json()["error"]["message"]

    run(test, tmp_path)


@pytest.mark.parametrize("origin", [None, "http://evil.example", "null", "http://cove.test.evil.example"])
def test_state_changing_requests_with_the_cookie_need_this_gateways_origin(tmp_path: Path, origin: str | None) -> None:
    async def test(gw: Gateway) -> None:
        headers = {"Origin": origin} if origin else {}
        async with gw.client() as c:
            refused_sign_in = await c.post("/dashboard/session", json={"token": gw.admin}, headers=headers)
            assert refused_sign_in.status_code == 403, refused_sign_in.text
            await sign_in(c, gw.admin)
            body = {"name": "from-elsewhere"}
            refused = await c.post("/api/v1/tokens", json=body, headers=headers)
            assert refused.status_code == 403 and "Origin" in refused.json()["error"]["message"], refused.text
            assert (await c.delete("/dashboard/session", headers=headers)).status_code == 403
            assert (await c.get("/api/v1/whoami", headers=headers)).status_code == 200  # reading is safe
            names = [t["name"] for t in (await c.get("/api/v1/tokens")).json()]
            assert "from-elsewhere" not in names
            made = await c.post("/api/v1/tokens", json=body, headers=ORIGIN)
            assert made.status_code == 201, made.text
            # Audited like the token's own call: under the token's id.
            entries = (await c.get("/api/v1/audit")).json()
            whoami = (await c.get("/api/v1/whoami")).json()
            create = next(e for e in entries if e["action"] == "token.create" and e["details"]["name"] == body["name"])
            assert create["token_id"] == whoami["token_id"]
            assert any(e["action"] == "session.open" for e in entries)

    run(test, tmp_path)


def test_sign_out_and_token_revocation_end_the_session(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        member = await gw.token("default")
        async with gw.client() as c:
            await sign_in(c, gw.admin)
            secret = c.cookies["cove_session"]
            out = await c.delete("/dashboard/session", headers=ORIGIN)
            assert out.status_code == 200 and 'cove_session=""' in out.headers["set-cookie"]
        async with gw.client() as replay:  # the old cookie, kept by an attacker or a stale tab
            replay.cookies.set("cove_session", secret)
            after = await replay.get("/api/v1/whoami")
            assert after.status_code == 401 and "sign in again" in after.json()["error"]["message"]
            assert (await replay.get("/dashboard/session")).json() == {"signed_in": False}
        with sqlite3.connect(gw.db) as db:  # an ended session stays until the next sign-in prunes it
            assert db.execute("SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL").fetchone() == (1,)
        async with gw.client() as other:  # a session left open, that will have expired
            await sign_in(other, gw.admin)
        with sqlite3.connect(gw.db) as db:
            assert db.execute("SELECT count(*) FROM sessions").fetchone() == (1,)  # the signed-out one is gone
            db.execute("UPDATE sessions SET expires_at = 1")  # as if 12 h had passed
        async with gw.client() as c:
            await sign_in(c, member)
            with sqlite3.connect(gw.db) as db:  # the expired session is gone: only the new one is left
                assert db.execute("SELECT count(*), min(expires_at) > 1 FROM sessions").fetchone() == (1, 1)
            assert (await c.get("/api/v1/whoami")).status_code == 200
            token_id = (await c.get("/api/v1/whoami")).json()["token_id"]
            async with gw.client() as operator:
                revoked = await operator.delete(
                    f"/api/v1/tokens/{token_id}", headers={"Authorization": f"Bearer {gw.admin}"}
                )
                assert revoked.status_code == 200
            assert (await c.get("/api/v1/whoami")).status_code == 401

    run(test, tmp_path)


def test_an_admin_switches_workspace_and_a_member_cannot(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        member = await gw.token("team-b")
        async with gw.client() as c:
            await sign_in(c, member)
            view = (await c.get("/dashboard/session")).json()
            assert view["workspace"] == "team-b" and "workspaces" not in view
            refused = await c.put("/dashboard/session/workspace", json={"workspace": "default"}, headers=ORIGIN)
            assert refused.status_code == 403
            assert (await c.get("/api/v1/whoami")).json()["workspace"] == "team-b"
        async with gw.client() as c:
            await sign_in(c, gw.admin)
            assert (await c.get("/dashboard/session")).json()["workspaces"] == ["default", "team-b"]
            missing = await c.put("/dashboard/session/workspace", json={"workspace": "nope"}, headers=ORIGIN)
            assert missing.status_code == 404
            switched = await c.put("/dashboard/session/workspace", json={"workspace": "team-b"}, headers=ORIGIN)
            assert switched.status_code == 200 and switched.json()["workspace"] == "team-b"
            whoami = (await c.get("/api/v1/whoami")).json()
            assert whoami["workspace"] == "team-b" and whoami["role"] == "admin"
            actions = [e["action"] for e in (await c.get("/api/v1/audit")).json()]
            assert "session.workspace" in actions  # recorded in the workspace switched to

    run(test, tmp_path)


def test_the_dashboard_page_loads_only_files_the_gateway_serves(tmp_path: Path) -> None:
    app = create_app(GatewaySettings(home=Home(tmp_path / "cove"), database_url="sqlite+aiosqlite:///unused.db"))

    async def fetch() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.api), base_url=BASE) as c:
            page = await c.get("/")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            policy = page.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert "://" not in page.text
            pending = set(re.findall(r'(?:src|href)="(/[^"]+)"', page.text))
            seen: set[str] = set()
            while pending:  # the page's files, then every module those import
                url = pending.pop()
                seen.add(url)
                reply = await c.get(url)
                assert reply.status_code == 200, url
                if url.endswith(".js"):
                    assert reply.headers["content-type"].startswith("text/javascript")
                    assert "innerHTML" not in reply.text and "eval(" not in reply.text, url
                    folder = url.rsplit("/", 1)[0]
                    for spec in re.findall(r'from "(\.{1,2}/[^"]+)"', reply.text):
                        pending.add(_join(folder, spec))
                pending -= seen
            assert "/dashboard/static/pages/overview.js" in seen
            assert (await c.get("/dashboard/static/../__init__.py")).status_code == 404
            assert (await c.get("/dashboard/static/index.html")).status_code == 404

    asyncio.run(fetch())


def _join(folder: str, spec: str) -> str:
    parts = folder.split("/")
    for piece in spec.split("/"):
        if piece == "..":
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return "/".join(parts)
