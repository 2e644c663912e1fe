"""The published OpenAPI document says what every control-API operation answers.

Clients, the CLI and schema-driven tests (``tests/security/test_schemathesis.py``
validates real answers against these schemas) rely on the document, so an
operation under ``/api/v1`` whose success answer has no schema is a gap: a
route added with an untyped ``dict`` return would publish ``{}`` and nobody
would notice. The document is read from an app built in-process (no server,
no database: the schema does not need them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

from cove._host.home import Home
from cove._wire import api
from cove._wire.worker import ContainerSpec, Order
from cove.gateway import GatewaySettings, create_app

JSON_TYPES = ("application/json",)
SCALARS = ("string", "number", "integer", "boolean")


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("openapi") / "cove"
    app = create_app(GatewaySettings(home=Home(home), database_url=f"sqlite+aiosqlite:///{home}/cove.db"))

    async def fetch() -> httpx.Response:
        # The FastAPI app alone, without its lifespan: no store, no scheduler, no workers are started.
        transport = httpx.ASGITransport(app=app.api)
        async with httpx.AsyncClient(transport=transport, base_url="http://cove") as client:
            return await client.get("/api/openapi.json")

    reply = asyncio.run(fetch())
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def _is_json(media_type: str) -> bool:
    return media_type in JSON_TYPES or media_type.endswith("+json")


def _described(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    """A schema that says what comes: an object with properties, an array of described items, a scalar."""
    if "$ref" in schema:
        return _described(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return bool(options) and all(_described(s, components) for s in options)
    if schema.get("type") == "object":
        return bool(schema.get("properties"))
    if schema.get("type") == "array":
        return _described(schema.get("items") or {}, components)
    return schema.get("type") in SCALARS


def _gaps(method: str, status: str, response: dict[str, Any], components: dict[str, Any]) -> str | None:
    """Why this success answer is not described, or None when it is."""
    content = response.get("content") or {}
    if method == "head" or status == "204":
        # No body by definition: documenting one would be the mistake.
        return f"declares a body {sorted(content)}" if content else None
    if not content:
        return "declares no content"
    for media_type, entry in content.items():
        if not _is_json(media_type) or _described(entry.get("schema") or {}, components):
            return None
    return f"has no schema with properties or items: {content}"


def test_every_control_operation_describes_its_success_answers(document: dict[str, Any]) -> None:
    components = document.get("components", {}).get("schemas", {})
    problems = []
    operations = 0
    for path, item in document["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in item.items():
            operations += 1
            successes = {status: r for status, r in operation["responses"].items() if status.startswith("2")}
            if not successes:
                problems.append(f"{method.upper()} {path}: no success status documented")
            for status, response in successes.items():
                gap = _gaps(method, status, response, components)
                if gap:
                    problems.append(f"{method.upper()} {path} {status}: {gap}")
    assert operations > 60, f"only {operations} operations under /api/v1: is the document complete?"
    assert not problems, f"{len(problems)} answers without a schema:\n" + "\n".join(problems)


def test_invocation_routes_document_their_statuses(document: dict[str, Any]) -> None:
    """Endpoints answer the user's data (no schema), but every status they can give is listed."""
    for path in ("/endpoint/{name}", "/endpoint/{name}/v{version}"):
        statuses = set(document["paths"][path]["post"]["responses"])
        assert {"200", "401", "404", "413", "422", "500", "502", "503", "504"} <= statuses, (path, statuses)


def test_the_queue_and_call_routes_document_the_idempotency_key(document: dict[str, Any]) -> None:
    for path in ("/taskqueue/{name}", "/api/v1/functions/{name}/calls"):
        parameters = document["paths"][path]["post"]["parameters"]
        names = [p["name"] for p in parameters if p["in"] == "header"]
        assert "Idempotency-Key" in names, json.dumps(parameters)


@pytest.mark.unit
def test_the_sdk_loads_neither_pydantic_nor_the_response_models() -> None:
    """``cove._wire.api`` is the gateway's side of the contract: ``import cove`` must work without pydantic."""
    code = "import sys, cove, cove.sdk; print(sorted(m for m in ('pydantic', 'cove._wire.api') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.unit
def test_the_published_worker_order_has_the_fields_of_the_one_workers_read() -> None:
    """The order schema mirrors ``_wire.worker``'s dataclasses; a field added to one alone fails here.

    The route's model forbids unknown keys, so a field added only to the
    dataclass would turn every start order into a 500 at run time.
    """
    assert set(api.ContainerStartSpec.model_fields) == {f.name for f in dataclasses.fields(ContainerSpec)}
    assert set(api.WorkerOrder.model_fields) == {f.name for f in dataclasses.fields(Order)}
