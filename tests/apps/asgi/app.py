"""Web apps the ASGI tests deploy: a FastAPI app (``@asgi``) and a plain WSGI app (``@wsgi``).

Their image is an environment the test prepares from packages already on the
machine (FastAPI and what it needs), named by ``COVE_TEST_PYENV`` at deploy
time: no package index is reached.
"""

import os
import time
from typing import Any

from cove import Image, asgi, wsgi

image = Image.from_python_env(os.environ.get("COVE_TEST_PYENV", "/nonexistent-test-env"))
STARTUPS: list[float] = []  # when each lifespan startup ran, in this container
FIRST_REQUEST: list[float] = []


@asgi(image=image, cpu=0.25, memory=256, concurrent_requests=8)
def shop() -> Any:
    import asyncio
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, HTTPException, Request, Response, WebSocket, WebSocketDisconnect
    from fastapi.responses import JSONResponse, StreamingResponse
    from pydantic import BaseModel

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        await asyncio.sleep(0.2)  # a model loading, say: the container is not ready until it is done
        STARTUPS.append(time.time())
        yield {"greeting": "hello from the lifespan"}

    app = FastAPI(title="shop", lifespan=lifespan)
    items: dict[int, dict[str, Any]] = {1: {"id": 1, "name": "apple", "price": 0.5}}

    class Item(BaseModel):
        name: str
        price: float

    @app.middleware("http")
    async def first_request(request: Request, call_next: Any) -> Any:
        if not FIRST_REQUEST:
            FIRST_REQUEST.append(time.time())
        return await call_next(request)

    @app.get("/items/{item_id}")
    async def get_item(item_id: int, detail: bool = False) -> dict[str, Any]:
        if item_id not in items:
            raise HTTPException(status_code=404, detail=f"no item {item_id}")
        item = items[item_id]
        return {**item, "detail": detail} if detail else item

    @app.post("/items", status_code=201)
    async def add_item(item: Item) -> dict[str, Any]:
        new = {"id": max(items) + 1, **item.model_dump()}
        items[new["id"]] = new
        return new

    @app.get("/lifespan")
    async def lifespan_info(request: Request) -> dict[str, Any]:
        return {"startups": STARTUPS, "first_request": FIRST_REQUEST[0], "greeting": request.state.greeting}

    @app.api_route("/echo/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def echo(rest: str, request: Request) -> Response:
        body = await request.body()
        seen = {
            "method": request.method,
            "path": request.url.path,
            "rest": rest,
            "root_path": request.scope["root_path"],
            "query": request.url.query,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]],
            "body": body.decode("latin-1"),
            "client": list(request.client) if request.client else None,
        }
        response = JSONResponse(seen, status_code=int(request.query_params.get("status", "200")))
        response.headers.append("x-multi", "one")
        response.headers.append("x-multi", "two")
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        size = pieces = 0
        async for piece in request.stream():
            size += len(piece)
            pieces += 1
        return {"size": size, "pieces": pieces}

    @app.get("/stream")
    async def stream(n: int = 3, pause: float = 0.5) -> StreamingResponse:
        async def produce() -> Any:
            for i in range(n):
                if i:
                    await asyncio.sleep(pause)
                yield f"chunk {i} at {time.time()}\n"

        return StreamingResponse(produce(), media_type="text/plain")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("the app fails here")

    @app.get("/exit")
    async def exit_now() -> None:
        os._exit(17)  # the container dies mid-request

    @app.websocket("/ws")
    async def ws_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    if message["text"] == "close":
                        await websocket.close(code=4001, reason="bye")
                        return
                    await websocket.send_text("echo: " + message["text"])
                else:
                    await websocket.send_bytes(bytes(reversed(message["bytes"])))
        except WebSocketDisconnect:
            return

    return app


@wsgi(image=image, cpu=0.25, memory=256, concurrent_requests=4)
def ledger() -> Any:
    """A WSGI app as PEP 3333 has it (what Flask's ``app.wsgi_app`` is), streaming its answer from a generator."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ["PATH_INFO"]
        if path == "/missing":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not here"]
        if path == "/boom":
            raise RuntimeError("the WSGI app fails here")
        if path == "/stream":

            def chunks() -> Any:
                for i in range(3):
                    if i:
                        time.sleep(0.5)
                    yield f"line {i} at {time.time()}\n".encode()

            start_response("200 OK", [("Content-Type", "text/plain")])
            return chunks()
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        seen = {
            "method": environ["REQUEST_METHOD"],
            "script_name": environ["SCRIPT_NAME"],
            "path_info": path,
            "query": environ["QUERY_STRING"],
            "body": body.decode(),
            "host": environ.get("HTTP_HOST"),
            "authorization": environ.get("HTTP_AUTHORIZATION"),
        }
        import json

        data = json.dumps(seen).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("X-Multi", "a"), ("X-Multi", "b")])
        return [data]

    return app
