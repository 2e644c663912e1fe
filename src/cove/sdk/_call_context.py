"""A call made while a container's handler serves a request goes out as part of that request.

``.remote`` and ``.spawn`` inside a handler send the request's id (``X-Request-Id``), so the lines the
called function prints carry the same id in ``cove logs``, and, when the request is traced, the
handler's span as ``traceparent``, so the nested call's spans are children of the handler's in one trace.

The runner is looked up, not imported: outside a container it is not loaded and nothing is added;
the SDK stays importable without it (see ``tests/unit/test_architecture.py``).
"""

from __future__ import annotations

import sys

REQUEST_IDS = "cove.runner._request_ids"
TRACING = "cove.runner._tracing"


def call_headers() -> dict[str, str]:
    """The headers that tie a call to the request the handler making it serves (empty outside one)."""
    ids = sys.modules.get(REQUEST_IDS)
    if ids is None:
        return {}
    headers: dict[str, str] = {}
    request_id = ids.REQUEST_ID.get()
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    tracing = sys.modules.get(TRACING)
    handler = getattr(tracing, "handler", None)
    if handler is not None:
        traceparent = handler.traceparent()
        if traceparent:
            headers["traceparent"] = traceparent
    return headers
