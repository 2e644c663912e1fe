"""A task queue and a function for the idempotency-key tests."""

from cove import function, task_queue


@task_queue()
def keyed_queue(i: int) -> int:
    return i * i


@function()
def keyed_function(i: int) -> int:
    return i * i
