"""``cove app``: the apps of the workspace (deployed files and scripts' ephemeral runs)."""

from __future__ import annotations

import time
import urllib.parse

import typer

from ._output import JsonOption, client, console, emit, errors, table

app_app = typer.Typer(help="List and stop apps: the functions deployed together from one file.", no_args_is_help=True)


def _since(ts: float | None) -> str:
    return "" if not ts else f"{int(time.time() - ts)}s ago"


@app_app.command("list")
def app_list(
    all_: bool = typer.Option(False, "--all", "-a", help="Include ephemeral apps that ended."),
    as_json: bool = JsonOption,
) -> None:
    """List apps: their deployments, where they were deployed from, and whether they are a script's run."""
    api = client(as_json)
    with errors(as_json):
        rows = api.request("GET", "/api/v1/apps", params={"all": all_})
    emit(
        rows,
        as_json,
        lambda: table(
            ["APP", "DEPLOYMENTS", "EPHEMERAL", "HEARTBEAT", "SOURCE"],
            [
                [
                    r["name"],
                    ", ".join(r["deployments"]),
                    ("ended" if r["stopped_at"] else "✓") if r["ephemeral"] else "",
                    _since(r["heartbeat_at"]) if r["ephemeral"] and not r["stopped_at"] else "",
                    r["source"],
                ]
                for r in rows
            ],
        ),
    )


@app_app.command("stop")
def app_stop(name: str = typer.Argument(..., help="The app's name or id."), as_json: bool = JsonOption) -> None:
    """Stop every deployment whose versions belong to the app (an ephemeral app ends)."""
    api = client(as_json)
    with errors(as_json):
        result = api.request("DELETE", f"/api/v1/apps/{urllib.parse.quote(name, safe='')}")
    emit(result, as_json, lambda: console.print(f"stopped app {result['name']}: {', '.join(result['stopped']) or '-'}"))
