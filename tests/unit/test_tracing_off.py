"""With ``COVE_OTLP_ENDPOINT`` unset, tracing costs nothing: no SDK loaded, no wrapper, no span.

Each check runs in a fresh interpreter, so that what ``sys.modules`` holds is
what the gateway's or the runner's own imports loaded. (FastAPI itself imports
the OpenTelemetry API's context module; the SDK and the exporter are Cove's.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

GATEWAY = """
import asyncio, sys, tempfile
from pathlib import Path

from cove._host.home import Home
from cove.gateway import app as gateway_app
from cove.gateway._request_ids import SCOPE_KEY as REQUEST_KEY
from cove.gateway._settings import GatewaySettings
from cove.gateway._tracing import SCOPE_KEY

settings = GatewaySettings(home=Home(Path(tempfile.mkdtemp())), database_url="sqlite+aiosqlite://")
assert settings.otlp_endpoint is None
seen = []

async def inner(scope, receive, send):
    seen.append(scope)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})

async def ignore(message):
    return None

from cove.gateway._express import ExpressLane
outer = gateway_app._outermost(inner, settings, ExpressLane(False))
scope = {"type": "http", "method": "POST", "path": "/endpoint/f", "headers": []}
asyncio.run(outer(scope, None, ignore))
assert seen[0][REQUEST_KEY] and SCOPE_KEY not in seen[0], seen[0]
loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter",
                                                        "opentelemetry.proto", "cove.gateway._tracing_otel")))
assert not loaded, loaded
# Off, the server serves the invocation path outside the ASGI cycle (on, it goes through the span's wrapper).
# It offers each one to the express lane first (warm calls served in callbacks).
from cove.gateway._invoke import EXPRESS_ENDPOINT, SERVE_ENDPOINT
served = gateway_app.create_app(settings)
assert callable(getattr(served, SERVE_ENDPOINT, None)) and callable(getattr(served, EXPRESS_ENDPOINT, None))
print("ok")
"""

RUNNER = """
import sys

from cove.runner import _main, _server, _tracing

_tracing.start("ctr-test", "f")
assert _tracing.handler is None
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
assert not loaded, loaded
print("ok")
"""


def _run(script: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "COVE_OTLP_ENDPOINT" and not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_gateway_loads_no_tracing_and_adds_no_span_when_off() -> None:
    assert _run(GATEWAY) == "ok"


def test_the_runner_imports_no_opentelemetry_when_off() -> None:
    assert _run(RUNNER) == "ok"


def test_the_runner_does_nothing_when_the_image_lacks_opentelemetry() -> None:
    # Tracing is on, but the image has no SDK: the runner goes on without spans.
    blocked = "import sys\nsys.modules['opentelemetry'] = None\n" + RUNNER.replace(
        'loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))\nassert not loaded, loaded\n', ""
    )
    assert _run(blocked, COVE_OTLP_ENDPOINT="http://127.0.0.1:9") == "ok"
