"""The API documentation pages load everything from the gateway itself: they render on an offline network."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from cove._host.home import Home
from cove.gateway import GatewaySettings, create_app

PAGES = ("/api/docs", "/redoc")
OTHER_HOST = r"[a-z]+://[^\"\s]+"


def _fetch(tmp_path: Path, paths: list[str]) -> dict[str, httpx.Response]:
    home = tmp_path / "cove"
    app = create_app(GatewaySettings(home=Home(home), database_url=f"sqlite+aiosqlite:///{home}/cove.db"))

    async def fetch() -> dict[str, httpx.Response]:
        # The pages and their files need no store: the app without its lifespan answers them.
        transport = httpx.ASGITransport(app=app.api)
        async with httpx.AsyncClient(transport=transport, base_url="http://cove") as client:
            return {path: await client.get(path) for path in paths}

    return asyncio.run(fetch())


def test_the_pages_name_only_the_gateways_own_urls_and_it_serves_them(tmp_path: Path) -> None:
    pages = _fetch(tmp_path, list(PAGES))
    referenced: set[str] = set()
    for path, reply in pages.items():
        assert reply.status_code == 200, path
        html = reply.text
        assert "://" not in html, f"{path} names another host: {re.findall(OTHER_HOST, html)}"
        referenced |= set(re.findall(r'(?:src|href)="([^"]+)"', html))
        referenced |= set(re.findall(r"url: '([^']+)'", html))
    assert "/api/openapi.json" in referenced
    scripts = {url for url in referenced if url.endswith((".js", ".css"))}
    assert {"/api/docs/assets/swagger-ui-bundle.js", "/api/docs/assets/redoc.standalone.js"} <= scripts
    files = _fetch(tmp_path, sorted(referenced))
    for url, reply in files.items():
        assert reply.status_code == 200, url
        assert len(reply.content) > 1000, url
    assert files["/api/docs/assets/swagger-ui-bundle.js"].headers["content-type"].startswith("text/javascript")
    assert files["/api/docs/assets/swagger-ui.css"].headers["content-type"].startswith("text/css")


def test_only_the_pages_files_are_served(tmp_path: Path) -> None:
    replies = _fetch(tmp_path, ["/api/docs/assets/__init__.py", "/api/docs/assets/..%2F__init__.py"])
    assert [reply.status_code for reply in replies.values()] == [404, 404]
