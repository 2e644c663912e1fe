"""The same trivial handler twice: as a FastAPI route of an ``@asgi`` app and as an ``@endpoint``.

Both run on one image (an environment with FastAPI, named by ``COVE_BENCH_PYENV``
at deploy time) with the same scaling, so the difference is the path a request
takes: the endpoint's JSON call, or the web app's HTTP relay and FastAPI's routing.
"""

import os
from typing import Any

from cove import Image, QueueDepthAutoscaler, asgi, endpoint

image = Image.from_python_env(os.environ.get("COVE_BENCH_PYENV", "/nonexistent-bench-env"))
SCALING: Any = {"autoscaler": QueueDepthAutoscaler(max_containers=1), "concurrent_requests": 32, "image": image}


@asgi(**SCALING)
def web() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/echo")
    async def echo(body: dict) -> dict:  # type: ignore[type-arg]
        return {"x": body.get("x")}

    return app


@endpoint(**SCALING)
def echo(x: object = None) -> dict[str, object]:
    return {"x": x}
