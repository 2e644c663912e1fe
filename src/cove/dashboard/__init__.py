"""The web dashboard: pages the gateway serves at ``/``, every file shipped in this package.

The pages are plain HTML, CSS and JavaScript modules with no build step and no
third-party code, so they load on a network without the internet and there
is nothing to rebuild or audit besides these files. They talk only to the
gateway's control API, with the session cookie that ``/dashboard/session``
sets (the gateway's part); this package holds no logic of the server's.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

router = APIRouter(include_in_schema=False)

ASSETS_URL = "/dashboard/static"
# The files the pages load and their media types: nothing else in the folder is served.
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# Scripts and styles come only from this gateway, and no inline script runs: text a user controls (a deployment
# name, a log line, an error) can never become code even if a page put it into markup by mistake.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",  # revalidated on each load: an upgraded gateway serves its own pages at once
}


def static_folder() -> Path:
    return Path(str(resources.files(__name__) / "static"))


def _assets() -> dict[str, Path]:
    """Every servable file by its path under the folder (``pages/overview.js``), read once."""
    root = static_folder()
    return {
        p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.suffix in MEDIA_TYPES and p.is_file()
    }


ASSETS = _assets()


@router.get("/", response_class=HTMLResponse)
async def index() -> Response:
    return FileResponse(static_folder() / "index.html", media_type="text/html", headers=SECURITY_HEADERS)


@router.get(f"{ASSETS_URL}/{{name:path}}")
async def asset(name: str) -> Response:
    path = ASSETS.get(name)
    if path is None:
        return JSONResponse({"error": {"type": "NotFound", "message": f"no dashboard file {name!r}"}}, 404)
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)
