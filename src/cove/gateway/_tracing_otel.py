"""The gateway's spans, with the OpenTelemetry SDK; loaded only when ``COVE_OTLP_ENDPOINT`` is set.

A request gets a SERVER span that continues the caller's ``traceparent``
(or starts a trace). The request's ``traceparent`` header is replaced by
the span's own, so whatever serves it next (a web app's container, the
leader a follower forwards to) continues this trace, and the request id,
taken from that header when the client sent no ``X-Request-Id``, is the
trace id. An endpoint call adds children: ``queue`` when it waited for a
container, ``container start`` inside it when a container was started
while it waited, and ``relay`` (CLIENT) around the call to the container,
whose ``traceparent`` the runner continues with the handler's span.

The provider is the gateway's own, not the global one: FastAPI's built-in
telemetry stays off, so no request gets two server spans. Spans are sent in
batches by the SDK's thread (what is queued is sent as the process exits);
a runner's spans come through
``POST /api/v1/containers/{id}/traces`` (OTLP JSON) and are sent on as
protobuf.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from google.protobuf import json_format  # type: ignore[import-untyped]
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._wire.peers import PEER_PREFIX

TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"
# The gateway's own traffic with its workers, peers and containers (heartbeats, log and span posts) and the
# scrapes: no spans, or a trace exporter would trace its own exports.
_UNTRACED = ("/api/v1/workers/", "/api/v1/containers/", "/healthz", "/metrics", PEER_PREFIX)
_WAIT_SPAN_SECONDS = 0.001  # a container slot taken sooner than this was free: no queue span
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
log = logging.getLogger("cove.tracing")


class Tracing:
    """The gateway's tracer and exporter, and the spans of one request's path."""

    def __init__(self, url: str, scope_key: str) -> None:
        self.url = url
        self.scope_key = scope_key  # where a request's scope holds this tracer, for ``_invoke``
        self.provider = TracerProvider(resource=Resource.create({"service.name": "cove-gateway"}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
        self.tracer = self.provider.get_tracer("cove.gateway")
        self.propagator = TraceContextTextMapPropagator()
        self._client: httpx.AsyncClient | None = None

    # --- the request's server span -------------------------------------------------------------------

    def wrap(self, app: Any) -> Any:
        """``app`` with a SERVER span around every HTTP request but the gateway's internal traffic."""

        async def traced(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["path"].startswith(_UNTRACED):
                scope[self.scope_key] = self
                await app(scope, receive, send)
                return
            span = self._server_span(scope)
            token = otel_context.attach(trace.set_span_in_context(span))
            status = [0]

            async def send_status(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_status)
            except BaseException as exc:
                span.record_exception(exc)
                status[0] = status[0] or 500
                raise
            finally:
                otel_context.detach(token)
                span.set_attribute("http.response.status_code", status[0])
                if status[0] >= 500:
                    span.set_status(StatusCode.ERROR)
                span.end()

        traced.api = getattr(app, "api", None)  # type: ignore[attr-defined]  # what the server's shutdown looks up
        return traced

    def _server_span(self, scope: dict[str, Any]) -> trace.Span:
        """The request's span, a child of the client's ``traceparent``; the header now names this span."""
        headers = scope["headers"]
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in headers
            if name in (TRACEPARENT, TRACESTATE)
        }
        parent = self.propagator.extract(carrier) if carrier else None
        method, path = scope["method"], scope["path"]
        span = self.tracer.start_span(
            f"{method} {path}" if path.startswith("/endpoint/") else method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )
        mine: dict[str, str] = {}
        self.propagator.inject(mine, trace.set_span_in_context(span))
        scope[self.scope_key] = self
        scope["headers"] = [(n, v) for n, v in headers if n not in (TRACEPARENT, TRACESTATE)] + [
            (name.encode(), value.encode("latin-1")) for name, value in mine.items()
        ]
        return span

    # --- an endpoint call's children -----------------------------------------------------------------

    def waited(self, since_ns: int, lease: Any, deployment: Any) -> None:
        """The ``queue`` span of a call that waited for its container (and its container's start, if it made one)."""
        now_ns = time.time_ns()
        if now_ns - since_ns < _WAIT_SPAN_SECONDS * 1e9:
            return
        slot = lease.slot
        attributes = {"cove.deployment": deployment.name, "cove.version": deployment.version}
        queue = self.tracer.start_span("queue", start_time=since_ns, attributes=attributes)
        created = getattr(slot, "created_at", None)
        if created is not None and getattr(slot, "served", 1) == 0 and created * 1e9 >= since_ns:
            child = self.tracer.start_span(
                "container start",
                context=trace.set_span_in_context(queue),
                start_time=int(created * 1e9),
                attributes={**attributes, "cove.container": slot.id, "cove.worker": getattr(slot, "worker_id", "")},
            )
            child.end(end_time=now_ns)
        queue.end(end_time=now_ns)

    @contextmanager
    def relay(self, lease: Any, deployment: Any, call_id: str) -> Iterator[str]:
        """The CLIENT span of the call to the container; yields the ``traceparent`` to send with it."""
        span = self.tracer.start_span(
            "relay",
            kind=SpanKind.CLIENT,
            attributes={
                "cove.deployment": deployment.name,
                "cove.version": deployment.version,
                "cove.container": lease.container_id,
                "cove.call_id": call_id,
            },
        )
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier, trace.set_span_in_context(span))
        try:
            yield carrier.get("traceparent", "")
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR)
            raise
        finally:
            span.end()

    # --- a container's spans -------------------------------------------------------------------------

    async def forward(self, body: bytes, resource: dict[str, str | int]) -> None:
        """Send a runner's OTLP JSON batch on as protobuf, its resource labelled with ``resource``.

        Raises ``ValueError`` when ``body`` is not OTLP JSON.
        """
        request = decode_otlp_json(body)
        for spans in request.resource_spans:
            attributes = spans.resource.attributes
            # The SDK's default service name says nothing: the deployment's is better.
            have = {kv.key for kv in attributes if not kv.value.string_value.startswith("unknown_service")}
            kept = [kv for kv in attributes if kv.key in have]
            del attributes[:]
            attributes.extend(kept)
            for key, value in resource.items():
                if key not in have:
                    any_value = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
                    attributes.append(KeyValue(key=key, value=any_value))
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10.0)
        try:
            answer = await self._client.post(
                self.url, content=request.SerializeToString(), headers={"Content-Type": "application/x-protobuf"}
            )
        except httpx.HTTPError as exc:
            log.warning("could not send a container's spans to %s: %s", self.url, exc)
            return
        if answer.status_code >= 400:
            log.warning("the collector at %s refused a container's spans: %d", self.url, answer.status_code)


def decode_otlp_json(body: bytes) -> ExportTraceServiceRequest:
    """An OTLP/JSON ``ExportTraceServiceRequest``: as protobuf's JSON, but with ids in hex, not base64."""
    import json

    data = json.loads(body)
    for resource_spans in data.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                _ids_to_base64(span)
                for link in span.get("links", ()):
                    _ids_to_base64(link)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise ValueError(str(exc)) from None
    return request


def _ids_to_base64(item: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        value = item.get(name)
        if value:
            item[name] = base64.b64encode(bytes.fromhex(value)).decode()
