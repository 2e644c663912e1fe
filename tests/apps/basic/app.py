"""Endpoints the end-to-end tests deploy."""

import os
import time

from cove import QueueDepthAutoscaler, endpoint

GREETING = "hello"


@endpoint
def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


@endpoint
def greet(name: str = "world") -> dict[str, str]:
    print(f"greeting {name}", flush=True)
    return {"message": f"{GREETING} {name}"}


@endpoint
def boom(message: str = "kaboom") -> None:
    raise ValueError(message)


@endpoint(keep_warm_seconds=1)
def brief() -> dict[str, int]:
    return {"pid": os.getpid()}


@endpoint(autoscaler=QueueDepthAutoscaler(max_containers=3, tasks_per_container=1), keep_warm_seconds=30)
def slow(seconds: float = 1.0) -> dict[str, object]:
    time.sleep(seconds)
    return {"pid": os.getpid(), "container": os.environ.get("COVE_CONTAINER_ID")}


def _setup() -> str:
    return f"warmed-{os.getpid()}"


@endpoint(on_start=_setup)
def context_info(context) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {"on_start": context.on_start_value, "container": context.container_id, "call": context.call_id}


@endpoint(authorized=False)
def public(word: str = "open") -> dict[str, str]:
    return {"word": word}


@endpoint(timeout=1)
def sleepy(seconds: float = 3.0) -> dict[str, float]:
    time.sleep(seconds)
    return {"slept": seconds}
