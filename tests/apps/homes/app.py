"""What the separate-homes test deploys: an endpoint, a function, a task queue and a secret reader."""

import os

from cove import endpoint, function, task_queue


@endpoint
def hello(name: str = "world") -> dict:
    return {"hello": name, "container": os.environ.get("COVE_CONTAINER_ID", "")}


@function
def square(i: int) -> int:
    return i * i


@task_queue
def double(i: int) -> int:
    return 2 * i


@endpoint(secrets=["homes-creds"], keep_warm_seconds=0)
def show_secret() -> dict:
    return {"value": os.environ.get("API_KEY")}
