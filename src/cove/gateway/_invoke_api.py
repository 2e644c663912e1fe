"""``POST /endpoint/{name}[/v{n}]`` in the OpenAPI document.

The gateway answers these paths before any routing (``_invoke``, plain ASGI
for speed), so FastAPI never sees them; the routes here exist only so that
the published document lists them with the statuses they answer. What an
endpoint returns is the user's own data, so its 200 has no schema.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from ._error_responses import ErrorBody
from ._errors import ApiError

router = APIRouter()

ENDPOINT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "The function's return value; a generator's items as it yields them (chunked; the content type "
            "follows the first item, or the Accept header: application/x-ndjson, text/event-stream)"
        ),
        "content": {
            "application/json": {"schema": {"description": "Whatever the function returned, as JSON"}},
            "application/x-ndjson": {"schema": {"type": "string", "description": "One JSON line per item"}},
            "text/event-stream": {"schema": {"type": "string", "description": "One server-sent event per item"}},
            "text/plain": {"schema": {"type": "string", "description": "The str items, one after another"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
        "headers": {
            "X-Cove-Call-Id": {"description": "This invocation's id", "schema": {"type": "string"}},
            "X-Cove-Container": {"description": "The container that answered", "schema": {"type": "string"}},
        },
    },
    422: {"model": ErrorBody, "description": "The body does not fit the function's parameters or declared inputs"},
    500: {"model": ErrorBody, "description": "The function raised; the error carries its traceback"},
    502: {"model": ErrorBody, "description": "The container failed while answering"},
    503: {"model": ErrorBody, "description": "No container could be started, or the deployment stopped"},
    504: {"model": ErrorBody, "description": "No answer within the deployment's timeout"},
}

# The body (the function's keyword arguments, a JSON object of any shape) is described in words only: a
# free-form object schema here makes the schema-driven fuzzer crash inside its generator (Python 3.11).
DESCRIPTION = (
    "The body is the function's keyword arguments as a JSON object (none: no arguments). "
    "The answer is the function's return value as JSON; a generator function's items stream as they are "
    "made (see docs/streaming.md). Without a token, the default workspace's "
    "endpoints deployed with authorized=False answer; every other one needs a token of its workspace."
)


@router.post(
    "/endpoint/{name}",
    summary="Invoke an endpoint: the JSON body is its keyword arguments",
    description=DESCRIPTION,
    response_class=JSONResponse,
    responses=ENDPOINT_RESPONSES,
)
async def invoke(name: str) -> JSONResponse:
    """Never reached through the gateway, which serves the path itself (see the module docstring)."""
    raise ApiError(404, "endpoints are served by the gateway's invocation path")


@router.post(
    "/endpoint/{name}/v{version}",
    summary="Invoke one version of an endpoint",
    description=DESCRIPTION,
    response_class=JSONResponse,
    responses=ENDPOINT_RESPONSES,
)
async def invoke_version(
    name: str,
    version: Annotated[str, Path(pattern=r"^[0-9]{1,10}$", description="The version number")],
) -> JSONResponse:
    """Never reached through the gateway, which serves the path itself (see the module docstring)."""
    raise ApiError(404, "endpoints are served by the gateway's invocation path")
