"""The floor of a relay in this design: uvicorn and the gateway's own container client, nothing else.

The gateway's relay is a bare uvicorn app (``bare_uvicorn.py``) plus one
request to the container and its answer. This app does only that: it reads
the body, POSTs it to the container at ``COVE_BENCH_UPSTREAM`` (``tcp:HOST:PORT``
or ``unix:PATH``) through ``cove.gateway._upstream.UpstreamPool`` and answers
with what came back. No token, no deployment lookup, no scheduler, no metrics,
no middleware: the gateway's CPU per request minus this one's is what the
platform itself costs per request.

    COVE_BENCH_UPSTREAM=tcp:127.0.0.1:PORT uvicorn bare_relay:app --loop uvloop --http httptools
"""

import os
from typing import Any

from _bare_asgi import answer_json, read_body

from cove.gateway._upstream import UpstreamPool

_UPSTREAM = os.environ.get("COVE_BENCH_UPSTREAM", "")
_POOL = UpstreamPool()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    status, payload = await _POOL.invoke(_UPSTREAM, body or b"{}", "call-bench")
    assert type(payload) is bytes, "the benchmark's handler answers whole"
    await answer_json(send, status, payload)
