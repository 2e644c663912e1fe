"""``cove workspace quota show|set|clear``: per-workspace limits on containers, cpu and GPUs."""

from __future__ import annotations

from typing import Any

import typer

from .._config import ConfigError, parse_cpu
from ..sdk._client import Client
from ._output import JsonOption, client, console, emit, errors, fail

workspace_app = typer.Typer(help="Workspace settings: quotas.", no_args_is_help=True)
quota_app = typer.Typer(help="Limits on what a workspace's containers may hold at once.", no_args_is_help=True)
workspace_app.add_typer(quota_app, name="quota")

WorkspaceArg = typer.Argument(None, help="Workspace name (default: the token's own).")


def _workspace(api: Client, name: str | None, as_json: bool) -> str:
    if name:
        return name
    with errors(as_json):
        me: dict[str, Any] = api.request("GET", "/api/v1/whoami")
    return str(me["workspace"])


def _limit(value: int | None, unit: str = "") -> str:
    return "unlimited" if value is None else f"{value}{unit}"


def _show(q: dict[str, Any]) -> None:
    usage = q["usage"]
    console.print(
        f"workspace {q['workspace']}\n"
        f"  containers: {usage['containers']} of {_limit(q['max_containers'])}\n"
        f"  cpu:        {usage['cpu_millis']}m of {_limit(q['max_cpu_millis'], 'm')}\n"
        f"  gpus:       {_limit(q['max_gpus'])}",
        highlight=False,
    )


@quota_app.command("show")
def quota_show(workspace: str | None = WorkspaceArg, as_json: bool = JsonOption) -> None:
    """A workspace's limits and what its containers use now."""
    api = client(as_json)
    name = _workspace(api, workspace, as_json)
    with errors(as_json):
        result = api.request("GET", f"/api/v1/workspaces/{name}/quota")
    emit(result, as_json, lambda: _show(result))


@quota_app.command("set")
def quota_set(
    workspace: str | None = WorkspaceArg,
    max_containers: int | None = typer.Option(None, min=0, help="Containers at once."),
    max_cpu: str | None = typer.Option(None, help="CPU at once: cores ('4') or millicores ('4000m')."),
    max_gpus: int | None = typer.Option(None, min=0, help="Whole GPUs at once."),
    as_json: bool = JsonOption,
) -> None:
    """Set a workspace's limits (needs an admin token); a limit not given is removed."""
    if max_containers is None and max_cpu is None and max_gpus is None:
        fail("give at least one of --max-containers, --max-cpu, --max-gpus (or use `quota clear`)", as_json)
    try:
        cpu_millis = parse_cpu(max_cpu) if max_cpu is not None else None
    except ConfigError as exc:
        fail(f"--max-cpu: {exc}", as_json)
    api = client(as_json)
    name = _workspace(api, workspace, as_json)
    body = {"max_containers": max_containers, "max_cpu_millis": cpu_millis, "max_gpus": max_gpus}
    with errors(as_json):
        result = api.request("PUT", f"/api/v1/workspaces/{name}/quota", json=body)
    emit(result, as_json, lambda: _show(result))


@quota_app.command("clear")
def quota_clear(workspace: str | None = WorkspaceArg, as_json: bool = JsonOption) -> None:
    """Remove a workspace's limits (needs an admin token)."""
    api = client(as_json)
    name = _workspace(api, workspace, as_json)
    with errors(as_json):
        result = api.request("DELETE", f"/api/v1/workspaces/{name}/quota")
    emit(result, as_json, lambda: _show(result))
