"""The kinds of deployment, and which of them each part of Cove treats alike.

The gateway routes calls, the scheduler starts dispatch loops and the store
keeps rows by kind; naming each group once here keeps them from drifting.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    Kind = Literal["endpoint", "function", "task_queue", "asgi", "sandbox", "schedule"]

KINDS = ("endpoint", "function", "task_queue", "asgi", "sandbox", "schedule")
# Served over HTTP, one request at a time: a caller waits, so nothing is retried on its behalf.
SERVING_KINDS = ("endpoint", "asgi")
# Calls are durable tasks: queued, dispatched to containers by the scheduler, retried by their policy.
TASK_KINDS = ("function", "task_queue", "schedule")
# What ``POST /api/v1/deployments`` accepts (sandboxes have their own route). ``asgi`` is a web app, ASGI or WSGI.
DEPLOYABLE_KINDS = ("endpoint", "function", "task_queue", "asgi", "schedule")
