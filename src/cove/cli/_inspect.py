"""``cove ps``, ``cove logs``, ``cove stop`` and ``cove deployment …``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import typer

from .._wire.parameters import label
from .._wire.urls import how_to_call
from ..exceptions import ConfigError
from ._output import JsonOption, client, console, emit, errors, stream_json, table

deployment_app = typer.Typer(help="List, show, scale, roll back and stop deployments.", no_args_is_help=True)


def _age(ts: float | None) -> str:
    if not ts:
        return ""
    seconds = int(time.time() - ts)
    return f"{seconds}s" if seconds < 120 else f"{seconds // 60}m" if seconds < 7200 else f"{seconds // 3600}h"


def ps(
    all_: bool = typer.Option(False, "--all", "-a", help="Include exited containers."),
    as_json: bool = JsonOption,
) -> None:
    """List containers."""
    api = client(as_json)
    with errors(as_json):
        rows = api.request("GET", "/api/v1/containers", params={"all": all_})
    emit(
        rows,
        as_json,
        lambda: table(
            [
                *("CONTAINER", "DEPLOYMENT", "VERSION", "PARAMETERS", "STATE", "AGE"),
                *("IN FLIGHT", "SERVED", "READY MS", "REASON"),
            ],
            [
                [
                    r["id"] or "(backlog)",
                    r["deployment"],
                    r["version"],
                    label(r.get("parameters") or {}),
                    r["state"],
                    _age(r["created_at"]),
                    r.get("in_flight"),
                    r.get("served"),
                    r["timings"].get("ready_ms"),
                    (r["reason"] or "")[:80],
                ]
                for r in rows
            ],
        ),
    )


def logs(
    target: str = typer.Argument(..., help="A deployment name or a container id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    tail: int | None = typer.Option(None, help="Only the last N lines."),
    as_json: bool = JsonOption,
) -> None:
    """Print a deployment's or container's logs."""
    api = client(as_json)
    with errors(as_json):
        records = api.logs(target, follow=follow, tail=tail)
        try:
            if as_json:
                stream_json(records)
                return
            for record in records:
                stamp = datetime.fromtimestamp(record.get("ts", 0), UTC).strftime("%H:%M:%S.%f")[:-3]
                style = "red" if record.get("stream") == "stderr" else None
                console.print(f"[dim]{stamp} {record.get('container_id', '')}[/] ", end="", highlight=False)
                console.print(record.get("text", ""), style=style, markup=False, highlight=False)
        except KeyboardInterrupt:
            pass


def stop(
    container_id: str = typer.Argument(..., help="A container id (see cove ps)."),
    as_json: bool = JsonOption,
) -> None:
    """Stop a container."""
    api = client(as_json)
    with errors(as_json):
        result = api.request("POST", f"/api/v1/containers/{container_id}/stop")
    emit(
        result,
        as_json,
        lambda: console.print(f"stopping {container_id}" if result["stopping"] else f"{container_id} is not running"),
    )


@deployment_app.command("list")
def deployment_list(
    all_: bool = typer.Option(False, "--all", "-a", help="Include stopped deployments."),
    as_json: bool = JsonOption,
) -> None:
    """List deployments and their versions."""
    api = client(as_json)
    with errors(as_json):
        rows = api.request("GET", "/api/v1/deployments", params={"all": all_})
    emit(
        rows,
        as_json,
        lambda: table(
            ["NAME", "VERSION", "LIVE", "KIND", "STATE", "AGE", "URL", "PARAMETER SETS"],
            [
                [
                    r["name"],
                    r["version"],
                    "✓" if r["live"] else "",
                    r["kind"],
                    r["state"],
                    _age(r["created_at"]),
                    r["version_url"] or "none",  # a schedule: it runs on its cron ticks
                    "; ".join(label(values) for values in r.get("parameter_sets") or []),
                ]
                for r in rows
            ],
        ),
    )


@deployment_app.command("show")
def deployment_show(
    name: str = typer.Argument(..., help="Deployment name."),
    version: int | None = typer.Option(None, help="A version (default: the newest active one)."),
    as_json: bool = JsonOption,
) -> None:
    """One deployment: its version, image, code, config and callback signing secret."""
    api = client(as_json)
    params = {"version": version} if version is not None else {}
    with errors(as_json):
        row = api.request("GET", f"/api/v1/deployments/{name}", params=params)
    emit(row, as_json, lambda: _print_deployment(row))


def _print_deployment(row: dict[str, Any]) -> None:
    fields = [
        "name",
        "version",
        "live",
        "kind",
        "state",
        "image_id",
        "code_hash",
        "url",
        "version_url",
        "callback_secret",
    ]
    for field in fields:
        if row.get(field) is not None:
            console.print(f"{field:16} {row[field]}", highlight=False, markup=False)
        elif field == "url":  # a kind with no URL (a schedule): say why
            console.print(f"{field:16} {how_to_call(row['kind'])}", highlight=False, markup=False)
    if row.get("url"):
        console.print(f"{'calls':16} {how_to_call(row['kind'])}", highlight=False, markup=False)


@deployment_app.command("rollback")
def deployment_rollback(
    name: str = typer.Argument(..., help="Deployment name."),
    to: int | None = typer.Option(
        None, "--to", help="The version to go back to (default: the one before the live one)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Make an earlier version live again, from its stored image and code: nothing is rebuilt."""
    api = client(as_json)
    body = {"to": to} if to is not None else {}
    with errors(as_json):
        row = api.request("POST", f"/api/v1/deployments/{name}/rollback", json=body)

    def show() -> None:
        if row["created"]:
            console.print(f"{name}: v{row['version']} is live, with the code and image of v{row['source_version']}")
        else:
            console.print(f"{name}: v{row['version']} is live already (the content of v{row['source_version']})")

    emit(row, as_json, show)


@deployment_app.command("scale")
def deployment_scale(
    name: str = typer.Argument(..., help="Deployment name."),
    min_containers: int | None = typer.Option(None, "--min", help="Containers kept running with no work."),
    max_containers: int | None = typer.Option(None, "--max", help="The most containers at once."),
    tasks_per_container: int | None = typer.Option(None, "--tasks-per-container", help="In-flight inputs aimed for."),
    buffer_containers: int | None = typer.Option(None, "--buffer", help="Idle containers kept ready under load."),
    scale_down_window: float | None = typer.Option(None, "--scale-down-window", help="Seconds before scaling down."),
    keep_warm_seconds: float | None = typer.Option(None, "--keep-warm", help="Idle seconds before a container stops."),
    as_json: bool = JsonOption,
) -> None:
    """Change a deployment's scale limits: a new version with the same code and image, nothing rebuilt."""
    api = client(as_json)
    given = {
        "min_containers": min_containers,
        "max_containers": max_containers,
        "tasks_per_container": tasks_per_container,
        "buffer_containers": buffer_containers,
        "scale_down_window": scale_down_window,
        "keep_warm_seconds": keep_warm_seconds,
    }
    with errors(as_json):
        body = {k: v for k, v in given.items() if v is not None}
        if not body:
            raise ConfigError("give at least one of --min, --max, --tasks-per-container, --buffer, ...")
        row = api.request("PATCH", f"/api/v1/deployments/{name}/scaling", json=body)
    limits = ", ".join(f"{k} {v}" for k, v in row["scaling"].items())

    def show() -> None:
        verb = "is live" if row["created"] else "is live already"
        console.print(f"{name}: v{row['version']} {verb} ({limits})", highlight=False, markup=False)

    emit(row, as_json, show)


@deployment_app.command("traffic")
def deployment_traffic(
    name: str = typer.Argument(..., help="Deployment name."),
    shares: list[str] = typer.Argument(None, help="VERSION=PERCENT for each version, e.g. v3=90 v4=10 (sum 100)."),
    clear: bool = typer.Option(False, "--clear", help="End the split: the newest version takes every call."),
    as_json: bool = JsonOption,
) -> None:
    """Share a deployment's calls between versions (a canary), or end the split with --clear."""
    api = client(as_json)
    with errors(as_json):
        if clear == bool(shares):
            raise ConfigError("give VERSION=PERCENT shares, or --clear, not both or neither")
        if clear:
            split = api.request("DELETE", f"/api/v1/deployments/{name}/traffic")
        else:
            weights = dict(_share(text) for text in shares)
            split = api.request("PUT", f"/api/v1/deployments/{name}/traffic", json={"weights": weights})
    shown = ", ".join(f"v{version} {percent} %" for version, percent in split["weights"].items())
    emit(split, as_json, lambda: console.print(f"{name}: {shown}", highlight=False))


def _share(text: str) -> tuple[int, int]:
    """``v3=90`` (or ``3=90``) as (3, 90)."""
    version, sep, percent = text.partition("=")
    version = version.removeprefix("v")
    if not sep or not version.isdigit() or not percent.strip().isdigit():
        raise ConfigError(f"{text!r} is not VERSION=PERCENT, like v3=90")
    return int(version), int(percent)


@deployment_app.command("stop")
def deployment_stop(
    name: str = typer.Argument(..., help="Deployment name."),
    as_json: bool = JsonOption,
) -> None:
    """Stop every version of a deployment and its containers."""
    api = client(as_json)
    with errors(as_json):
        result = api.request("POST", f"/api/v1/deployments/{name}/stop")
    emit(result, as_json, lambda: console.print(f"stopped {name} (versions {result['stopped_versions']})"))
