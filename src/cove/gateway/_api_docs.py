"""``/api/docs`` (Swagger UI) and ``/redoc`` (ReDoc), with their scripts served by the gateway itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so on a network
without the internet they render blank. Here the pages name only the
gateway's URLs, and the files come from the ``fastapi-offline`` package, which
ships the Swagger UI and ReDoc distributions (FastAPI's recipe for
self-hosting the docs' static assets). The pages carry no data of any
workspace: the document they render is ``/api/openapi.json``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from ._errors import ApiError

router = APIRouter(include_in_schema=False)

OPENAPI_URL = "/api/openapi.json"
SWAGGER_URL = "/api/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/api/docs/assets"
# The files the pages load, and their media types: nothing else is served from the folder.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
ASSET_MAX_AGE = 86400  # the files change only with the installed package


def assets_folder() -> Path:
    """Where the installed ``fastapi-offline`` keeps Swagger UI's and ReDoc's files."""
    return Path(str(resources.files("fastapi_offline") / "static"))


@router.get(SWAGGER_URL, response_class=HTMLResponse)
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title="Cove API",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
    )


@router.get(REDOC_URL, response_class=HTMLResponse)
async def redoc() -> HTMLResponse:
    return get_redoc_html(
        openapi_url=OPENAPI_URL,
        title="Cove API",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
        with_google_fonts=False,  # fonts from the internet would be another request that fails offline
    )


@router.get(f"{ASSETS_URL}/{{name}}", response_class=FileResponse)
async def asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, f"no documentation asset {name!r}")
    return FileResponse(
        assets_folder() / name, media_type=media_type, headers={"Cache-Control": f"max-age={ASSET_MAX_AGE}"}
    )
