"""Where a deployment answers calls over HTTP, by kind: the one place that says so.

The gateway puts these URLs in every deployment it shows (``url`` and
``version_url`` of ``cove deploy``, ``cove deployment list|show`` and the
control API); the CLI prints them with ``how_to_call``. Each kind answers on
its own route:

- ``endpoint``: ``POST /endpoint/NAME`` (pinned: ``/endpoint/NAME/vN``), the
  arguments as one JSON object; the answer is the result.
- ``task_queue``: ``POST /taskqueue/NAME`` (pinned: ``?version=N``), the
  arguments as one JSON object; the answer (202) is ``{"task_id": ...}``.
- ``function``: ``POST /api/v1/functions/NAME/calls`` (pinned: ``?version=N``),
  the body pickled ``(args, kwargs)`` as ``.remote`` sends it; the answer is the
  pickled result.
- ``schedule``: none; it runs on its cron ticks (``.remote`` runs it at once).

Standard library only: the CLI imports this without the server extra.
"""

from __future__ import annotations

ENDPOINT_PREFIX = "/endpoint/"
TASK_QUEUE_PREFIX = "/taskqueue/"
FUNCTION_PREFIX = "/api/v1/functions/"
FUNCTION_SUFFIX = "/calls"
ASGI_PREFIX = "/asgi/"

_HOW = {
    "endpoint": "POST its arguments as a JSON object; answers the result",
    "task_queue": "POST its arguments as a JSON object; answers 202 and the task id",
    "function": "POST pickled (args, kwargs) as .remote() does; answers the result",
    "asgi": "any method and path under it, and WebSockets: the web app answers as it would at its root",
}


def call_url(base: str, kind: str, name: str, version: int | None = None) -> str | None:
    """The URL a deployment of ``kind`` named ``name`` answers calls on, pinned to ``version`` when given.

    ``base`` is the gateway's public URL (no trailing ``/``). None for a kind
    that answers no calls over HTTP (a schedule, a sandbox).
    """
    pinned = "" if version is None else f"?version={version}"
    if kind == "endpoint":
        return f"{base}{ENDPOINT_PREFIX}{name}" + ("" if version is None else f"/v{version}")
    if kind == "task_queue":
        return f"{base}{TASK_QUEUE_PREFIX}{name}{pinned}"
    if kind == "function":
        return f"{base}{FUNCTION_PREFIX}{name}{FUNCTION_SUFFIX}{pinned}"
    if kind == "asgi":
        return f"{base}{ASGI_PREFIX}{name}/" + ("" if version is None else f"v{version}/")
    return None


def how_to_call(kind: str) -> str:
    """What a caller sends to the kind's URL, in a few words; for a kind with no URL, why it has none."""
    if kind == "schedule":
        return "no URL: a schedule runs on its cron ticks (.remote() runs it now)"
    return _HOW.get(kind, f"no URL for a deployment of kind {kind!r}")
