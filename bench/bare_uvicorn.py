"""The physical reference: a bare uvicorn app answering the same JSON as the benchmark's handler."""

import json
from typing import Any

from _bare_asgi import answer_json, read_body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    await answer_json(send, 200, json.dumps({"x": json.loads(body or b"{}").get("x")}).encode())
