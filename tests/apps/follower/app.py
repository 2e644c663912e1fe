"""What the follower data-plane test deploys: a quick endpoint and a slow one that needs more containers in a burst."""

import os
import time
from collections.abc import Iterator
from typing import Any

from cove import QueueDepthAutoscaler, asgi, endpoint, function


@endpoint(keep_warm_seconds=300)
def echo(i: int = 0) -> dict:
    return {"i": i, "container": os.environ.get("COVE_CONTAINER_ID", "")}


@endpoint(
    keep_warm_seconds=300,
    concurrent_requests=1,
    autoscaler=QueueDepthAutoscaler(max_containers=3, tasks_per_container=1),
)
def slow(i: int = 0) -> dict:
    time.sleep(0.5)
    return {"i": i, "container": os.environ.get("COVE_CONTAINER_ID", "")}


def _cold(i: int) -> dict:
    time.sleep(0.5)
    return {"i": i, "container": os.environ.get("COVE_CONTAINER_ID", "")}


@endpoint(
    keep_warm_seconds=300,
    concurrent_requests=1,
    autoscaler=QueueDepthAutoscaler(max_containers=3, tasks_per_container=1),
)
def cold_leader(i: int = 0) -> dict:
    """Deployed cold, then hit by a burst through the leader: the containers a burst from zero starts there."""
    return _cold(i)


@endpoint(
    keep_warm_seconds=300,
    concurrent_requests=1,
    autoscaler=QueueDepthAutoscaler(max_containers=3, tasks_per_container=1),
)
def cold_follower(i: int = 0) -> dict:
    """The same, through the follower: it must start as many."""
    return _cold(i)


@endpoint(cpu=16)
def huge(i: int = 0) -> dict:
    """More cores than any worker has (deployed with --force): every call is a 503 NoCapacity."""
    return {"i": i}


@function
def square(i: int) -> int:
    """Called with ``.remote`` and ``.map`` through the follower: committed there, run by the leader's dispatch.

    A negative number fails: how a map's failed input travels back.
    """
    if i < 0:
        raise ValueError(f"negative: {i}")
    return i * i


@function
def chatty(lines: int) -> int:
    """Prints a line a second, then returns: its output must reach a caller on the follower while it runs."""
    for i in range(lines):
        print(f"line {i}", flush=True)
        time.sleep(1.0)
    return lines


@function(keep_warm_seconds=300)
def ticks(count: int, pause: float = 0.0) -> Iterator[int]:
    """A generator (``.remote_gen``): its items must reach a caller on the follower as they are made.

    A negative count fails after its first item: how a stream's failure travels back.
    """
    for i in range(abs(count)):
        if i and count < 0:
            raise ValueError(f"negative: {count}")
        yield i
        time.sleep(pause)


@asgi(keep_warm_seconds=300)
def web() -> Any:
    """A bare ASGI app (no framework): HTTP answers echo what the app saw, a WebSocket echoes its messages."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            while (message := await receive())["type"] == "websocket.receive":
                await send({"type": "websocket.send", "text": "echo " + (message.get("text") or "")})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        container = os.environ.get("COVE_CONTAINER_ID", "")
        answer = f"{scope['method']} {scope['path']} {len(body)} {container}".encode()
        headers = [(b"content-type", b"text/plain"), (b"x-root-path", scope.get("root_path", "").encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


@endpoint(
    keep_warm_seconds=300,
    concurrent_requests=1,
    autoscaler=QueueDepthAutoscaler(max_containers=3, tasks_per_container=1),
)
def queued(i: int = 0) -> dict:
    """Hit by a burst while a follower's native front serves it: the leader must see the calls waiting there."""
    return _cold(i)
