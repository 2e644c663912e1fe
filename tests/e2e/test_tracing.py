"""OpenTelemetry traces: a request's spans reach an OTLP/HTTP collector, the user's own span among them.

The collector is a plain ``http.server`` on loopback that decodes each
``ExportTraceServiceRequest`` with the OTLP protobuf definitions, as a real
collector would.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import opentelemetry.sdk.trace
import pytest
from conftest import start_server
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

APP = """
from opentelemetry import trace

from cove import endpoint

tracer = trace.get_tracer("traced-app")


@endpoint
def traced_hello(name: str) -> dict:
    with tracer.start_as_current_span("user-work") as span:
        span.set_attribute("greeting.name", name)
        return {"hello": name}
"""
NESTED_APP = """
from cove import endpoint, function


@function
def traced_double(x: int) -> int:
    return 2 * x


@endpoint
def traced_caller(x: int) -> dict:
    return {"doubled": traced_double.remote(x)}
"""
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
NESTED_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "00f067aa0ba902b7"
SERVER, CLIENT = 2, 3  # OTLP's span kinds


class Collector:
    """The spans posted to ``/v1/traces``, each as a dict of what the test asserts on."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.content_types: set[str] = set()
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with collector.lock:
                    collector.content_types.add(self.headers["Content-Type"])
                    for resource_spans in request.resource_spans:
                        resource = {kv.key: kv.value for kv in resource_spans.resource.attributes}
                        service = resource["service.name"].string_value
                        for scope_spans in resource_spans.scope_spans:
                            for span in scope_spans.spans:
                                collector.spans.append(
                                    {
                                        "name": span.name,
                                        "service": service,
                                        "kind": span.kind,
                                        "trace": span.trace_id.hex(),
                                        "id": span.span_id.hex(),
                                        "parent": span.parent_span_id.hex(),
                                        "attributes": {kv.key: kv.value for kv in span.attributes},
                                        "resource": resource,
                                    }
                                )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_port}"

    def of_trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [span for span in self.spans if span["trace"] == trace_id]


@pytest.fixture
def collector() -> Iterator[Collector]:
    receiver = Collector()
    yield receiver
    receiver.http.shutdown()
    receiver.http.server_close()


def _bring_opentelemetry(code: Path) -> None:
    """The default image has no OpenTelemetry: the app brings the API and SDK (pure Python) with its code."""
    package = Path(opentelemetry.sdk.trace.__file__).parent.parent.parent
    site = package.parent
    shutil.copytree(package, code / "opentelemetry", ignore=shutil.ignore_patterns("__pycache__", "exporter", "proto"))
    for dist in ("opentelemetry_api", "opentelemetry_sdk", "opentelemetry_semantic_conventions"):
        (found,) = site.glob(f"{dist}-*.dist-info")  # the API finds its context and propagators by entry point
        shutil.copytree(found, code / found.name)


def _one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    named = [span for span in spans if span["name"] == name]
    assert len(named) == 1, (name, spans)
    return named[0]


def test_a_request_traces_gateway_relay_handler_and_user_span(collector: Collector, tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text(APP)
    _bring_opentelemetry(tmp_path / "code")
    server = start_server(
        tmp_path / "cove", None, {"COVE_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    )
    try:
        server.deploy(f"{tmp_path / 'code' / 'app.py'}:traced_hello")
        with server.http() as http:
            cold = http.post("/endpoint/traced-hello", json={"name": "cold"}, timeout=120)
            assert cold.status_code == 200, cold.text
            traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
            warm = http.post("/endpoint/traced-hello", json={"name": "warm"}, headers={"traceparent": traceparent})
            assert warm.status_code == 200, warm.text

        # The trace the client started is continued: its id is the request id too.
        assert warm.headers["x-request-id"] == CLIENT_TRACE
        spans = server.wait_for(lambda: len(s := collector.of_trace(CLIENT_TRACE)) >= 4 and s, timeout=30)
        gateway = _one(spans, "POST /endpoint/traced-hello")
        relay = _one(spans, "relay")
        handler = _one(spans, "traced_hello")
        user = _one(spans, "user-work")
        assert (gateway["kind"], gateway["parent"], gateway["service"]) == (SERVER, CLIENT_SPAN, "cove-gateway")
        assert (relay["kind"], relay["parent"]) == (CLIENT, gateway["id"])
        assert relay["attributes"]["cove.container"].string_value == warm.headers["x-cove-container"]
        assert (handler["kind"], handler["parent"]) == (SERVER, relay["id"])
        assert handler["service"] == "traced-hello"  # the container's spans name their deployment
        assert handler["resource"]["cove.container"].string_value == warm.headers["x-cove-container"]
        assert user["parent"] == handler["id"]
        assert user["attributes"]["greeting.name"].string_value == "warm"
        assert gateway["attributes"]["http.response.status_code"].int_value == 200

        # Without a traceparent the gateway starts the trace, and the request id is its id; the first call
        # waited for the container it started.
        cold_trace = cold.headers["x-request-id"]
        spans = server.wait_for(lambda: len(s := collector.of_trace(cold_trace)) >= 6 and s, timeout=30)
        gateway = _one(spans, "POST /endpoint/traced-hello")
        assert gateway["parent"] == ""
        queue = _one(spans, "queue")
        assert queue["parent"] == gateway["id"]
        started = _one(spans, "container start")
        assert started["parent"] == queue["id"]
        assert started["attributes"]["cove.container"].string_value == cold.headers["x-cove-container"]
        assert _one(spans, "relay")["parent"] == gateway["id"]
        assert _one(spans, "user-work")["parent"] == _one(spans, "traced_hello")["id"]
        assert collector.content_types == {"application/x-protobuf"}
    finally:
        server.stop()


def test_a_remote_made_in_a_handler_joins_the_trace_under_the_handler_span(
    collector: Collector, tmp_path: Path
) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text(NESTED_APP)
    _bring_opentelemetry(tmp_path / "code")
    server = start_server(
        tmp_path / "cove", None, {"COVE_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    )
    try:
        for name in ("traced_double", "traced_caller"):
            server.deploy(f"{tmp_path / 'code' / 'app.py'}:{name}")
        with server.http() as http:
            traceparent = f"00-{NESTED_TRACE}-{CLIENT_SPAN}-01"
            reply = http.post(
                "/endpoint/traced-caller", json={"x": 21}, headers={"traceparent": traceparent}, timeout=180
            )
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"doubled": 42}

        def both() -> list[dict[str, Any]] | None:
            spans = collector.of_trace(NESTED_TRACE)
            names = {span["name"] for span in spans}
            return spans if {"traced_caller", "traced_double"} <= names else None

        spans = server.wait_for(both, timeout=30)
        caller = _one(spans, "traced_caller")
        double = _one(spans, "traced_double")
        assert (caller["service"], double["service"]) == ("traced-caller", "traced-double")
        assert caller["kind"] == double["kind"] == SERVER
        by_id = {span["id"]: span for span in spans}
        ancestors, parent = [], double["parent"]
        while parent in by_id:  # up from the function's handler span, through the gateway's spans of the call
            ancestors.append(by_id[parent]["name"])
            if parent == caller["id"]:
                break
            parent = by_id[parent]["parent"]
        assert parent == caller["id"], (ancestors, spans)
    finally:
        server.stop()
