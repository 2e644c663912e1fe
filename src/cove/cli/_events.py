"""``cove events``: why the scheduler did what it did, and why work waits.

``--follow`` polls ``GET /api/v1/events`` with the cursor of the last answer,
so only new events come back and no connection stays open between polls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import typer

from ..sdk.client import Client
from ._output import JsonOption, client, console, errors, stream_json

FOLLOW_POLL_SECONDS = 1.0


def _pages(api: Client, deployment: str | None, limit: int, follow: bool) -> Iterator[dict[str, Any]]:
    """The newest ``limit`` events, then (following) each new one as it is recorded."""
    params: dict[str, Any] = {"limit": limit}
    if deployment:
        params["deployment"] = deployment
    page = api.request("GET", "/api/v1/events", params=params)
    yield from page["events"]
    while follow:
        time.sleep(FOLLOW_POLL_SECONDS)
        page = api.request("GET", "/api/v1/events", params={**params, "limit": 1000, "since": page["cursor"]})
        yield from page["events"]


def _line(event: dict[str, Any]) -> None:
    stamp = datetime.fromtimestamp(event["ts"]).strftime("%Y-%m-%d %H:%M:%S")
    where = event["deployment"] or "(cluster)"
    if event.get("version") is not None:
        where += f" v{event['version']}"
    console.print(f"[dim]{stamp}[/] [bold]{event['kind']:<8}[/] {where}: ", end="", highlight=False)
    console.print(event["reason"], markup=False, highlight=False)


def events(
    deployment: str | None = typer.Argument(None, help="Only this deployment's events."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=1000, help="How many of the newest to show first."),
    as_json: bool = JsonOption,
) -> None:
    """Show the control plane's decisions: scaling, placements, backlog reasons, starts, exits, retries, drains."""
    api = client(as_json)
    with errors(as_json):
        records = _pages(api, deployment, limit, follow)
        try:
            if as_json and not follow:
                print(json.dumps(list(records), indent=2))
                return
            if as_json:
                stream_json(records)
                return
            for event in records:
                _line(event)
        except KeyboardInterrupt:
            pass
