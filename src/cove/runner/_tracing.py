"""The handler's span, and the user's own OpenTelemetry spans in the request's trace.

Only when the gateway traces (the worker passes ``COVE_OTLP_ENDPOINT`` on)
and the user's image or code has the OpenTelemetry SDK: the runner imports
nothing of it otherwise (it is standard library only), and a request then
pays one ``is None`` test. With it, each ``/invoke`` runs inside a SERVER
span whose parent is the gateway's relay span (the request's
``traceparent``), and that span is the current one while the handler runs,
so spans the handler starts join the request's trace.

Unless the user's code set a tracer provider of its own, the runner sets
the global one: its spans, the handler's included, are posted in batches to
the gateway (``/api/v1/containers/{id}/traces``, OTLP JSON), which sends them
on to the collector. Containers often have no network; they always reach
their gateway.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

ENDPOINT_ENV = "COVE_OTLP_ENDPOINT"
# The SpanKind enum's values, as OTLP numbers them (INTERNAL is 1 there, 0 in the SDK).
_KIND_OFFSET = 1


class _Handler:
    """Starts and ends the handler span of each traced request."""

    def __init__(self, name: str) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._context = context
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        self._tracer = trace.get_tracer("cove.runner")
        self._server = trace.SpanKind.SERVER
        self._error = trace.StatusCode.ERROR
        self.name = name

    def begin(self, traceparent: str | None, call_id: str | None) -> tuple[Any, object]:
        """The request's span, made current; end it with :meth:`end`."""
        parent = self._propagator.extract({"traceparent": traceparent}) if traceparent else None
        span = self._tracer.start_span(
            self.name, context=parent, kind=self._server, attributes={"cove.call_id": call_id or ""}
        )
        return span, self._context.attach(self._trace.set_span_in_context(span, parent))

    def traceparent(self) -> str | None:
        """The current span as a W3C ``traceparent`` (a nested call made by the handler sends it on)."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier.get("traceparent")

    def end(self, begun: tuple[Any, object], status: int) -> None:
        span, token = begun
        self._context.detach(token)  # type: ignore[arg-type]
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            span.set_status(self._error)
        span.end()


handler: _Handler | None = None  # set by start() when tracing is on
_provider: list[Any] = []


def start(container_id: str, function_name: str) -> None:
    """Trace requests if the gateway traces and the OpenTelemetry SDK is importable here."""
    global handler
    if not os.environ.get(ENDPOINT_ENV) or not container_id:
        return
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return  # the image has no OpenTelemetry SDK: nothing to join
    from cove.runner._gateway_http import reachable

    current = trace.get_tracer_provider()
    if type(current).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider") and reachable():
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(_exporter(container_id)))
        trace.set_tracer_provider(provider)
        _provider.append(provider)
    handler = _Handler(function_name)


def flush() -> None:
    """The container stops: send the spans still queued."""
    for provider in _provider:
        try:
            provider.shutdown()
        except Exception:
            return


def _exporter(container_id: str) -> Any:
    """A span exporter that posts OTLP JSON to the gateway: an SDK ``SpanExporter``, made when the SDK is here."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from cove.runner._gateway_http import GatewayError, request

    path = f"/api/v1/containers/{container_id}/traces"

    class GatewayExporter(SpanExporter):
        def export(self, spans: Sequence[Any]) -> Any:
            try:
                request("POST", path, encode(spans), content_type="application/json", timeout=10)
            except GatewayError:
                return SpanExportResult.FAILURE
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            return None

    return GatewayExporter()


def encode(spans: Sequence[Any]) -> bytes:
    """SDK spans as an OTLP/JSON ``ExportTraceServiceRequest`` (ids in hex, times in nanoseconds as strings)."""
    groups: dict[tuple[int, str, str], tuple[Any, Any, list[dict[str, Any]]]] = {}
    for span in spans:
        scope = span.instrumentation_scope
        key = (id(span.resource), scope.name if scope else "", (scope.version or "") if scope else "")
        groups.setdefault(key, (span.resource, scope, []))[2].append(_span(span))
    resource_spans: dict[int, dict[str, Any]] = {}
    for (resource_key, _, _), (resource, scope, encoded) in groups.items():
        entry = resource_spans.setdefault(
            resource_key, {"resource": {"attributes": _attributes(resource.attributes)}, "scopeSpans": []}
        )
        scope_json = {"name": scope.name, "version": scope.version or ""} if scope else {}
        entry["scopeSpans"].append({"scope": scope_json, "spans": encoded})
    return json.dumps({"resourceSpans": list(resource_spans.values())}).encode()


def _span(span: Any) -> dict[str, Any]:
    context = span.context
    out: dict[str, Any] = {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
        "name": span.name,
        "kind": span.kind.value + _KIND_OFFSET,
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
        "attributes": _attributes(span.attributes),
        "status": {"code": span.status.status_code.value, "message": span.status.description or ""},
    }
    if span.parent is not None:
        out["parentSpanId"] = f"{span.parent.span_id:016x}"
    if span.events:
        out["events"] = [
            {"timeUnixNano": str(e.timestamp), "name": e.name, "attributes": _attributes(e.attributes)}
            for e in span.events
        ]
    if span.links:
        out["links"] = [
            {
                "traceId": f"{link.context.trace_id:032x}",
                "spanId": f"{link.context.span_id:016x}",
                "attributes": _attributes(link.attributes),
            }
            for link in span.links
        ]
    return out


def _attributes(attributes: Any) -> list[dict[str, Any]]:
    return [{"key": str(key), "value": _value(value)} for key, value in (attributes or {}).items()]


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_value(item) for item in value]}}
    return {"stringValue": str(value)}
