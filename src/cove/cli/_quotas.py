"""``cove workspace quota show|set|clear``: per-workspace limits on containers, cpu, GPUs and disk."""

from __future__ import annotations

from typing import Any

import typer

from .._wire.sizes import parse_cpu, parse_memory
from ..exceptions import ConfigError
from ..sdk.client import Client
from ._output import JsonOption, client, console, emit, errors, fail

workspace_app = typer.Typer(help="Workspace settings: quotas.", no_args_is_help=True)
quota_app = typer.Typer(help="Limits on what a workspace's containers and data may hold.", no_args_is_help=True)
workspace_app.add_typer(quota_app, name="quota")

WorkspaceArg = typer.Argument(None, help="Workspace name (default: the token's own).")
MiB = 1024 * 1024
DISK_KINDS = ("volume", "code", "blob")


def _workspace(api: Client, name: str | None, as_json: bool) -> str:
    if name:
        return name
    with errors(as_json):
        me: dict[str, Any] = api.request("GET", "/api/v1/whoami")
    return str(me["workspace"])


def _limit(value: int | None, unit: str = "") -> str:
    return "unlimited" if value is None else f"{value}{unit}"


def _size(value: int | None) -> str:
    if value is None:
        return "unlimited"
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} bytes"


def _show(q: dict[str, Any]) -> None:
    usage, disk = q["usage"], q.get("disk", {})
    source = " (the default quota)" if q.get("default") else ""
    lines = [
        f"workspace {q['workspace']}{source}",
        f"  containers: {usage['containers']} of {_limit(q['max_containers'])}",
        f"  cpu:        {usage['cpu_millis']}m of {_limit(q['max_cpu_millis'], 'm')}",
        f"  gpus:       {_limit(q['max_gpus'])}",
    ]
    for kind in DISK_KINDS:
        lines.append(f"  {kind + 's:':<11} {_size(disk.get(f'{kind}_bytes', 0))} of {_size(q[f'max_{kind}_bytes'])}")
    console.print("\n".join(lines), highlight=False)


@quota_app.command("show")
def quota_show(workspace: str | None = WorkspaceArg, as_json: bool = JsonOption) -> None:
    """A workspace's limits and what it uses now."""
    api = client(as_json)
    name = _workspace(api, workspace, as_json)
    with errors(as_json):
        result = api.request("GET", f"/api/v1/workspaces/{name}/quota")
    emit(result, as_json, lambda: _show(result))


def _bytes(option: str, value: str | None, as_json: bool) -> int | None:
    """A size like '10Gi' or '500Mi' in bytes."""
    if value is None:
        return None
    try:
        return parse_memory(value) * MiB
    except ConfigError as exc:
        fail(f"{option}: {exc}", as_json)


@quota_app.command("set")
def quota_set(
    workspace: str | None = WorkspaceArg,
    max_containers: int | None = typer.Option(None, min=0, help="Containers at once."),
    max_cpu: str | None = typer.Option(None, help="CPU at once: cores ('4') or millicores ('4000m')."),
    max_gpus: int | None = typer.Option(None, min=0, help="Whole GPUs at once."),
    max_volume: str | None = typer.Option(None, help="Disk for the workspace's volumes ('100Gi')."),
    max_code: str | None = typer.Option(None, help="Disk for its uploaded code archives ('10Gi')."),
    max_blob: str | None = typer.Option(None, help="Disk for its blobs: large call arguments and results ('50Gi')."),
    as_json: bool = JsonOption,
) -> None:
    """Set a workspace's limits (needs an admin token); a limit not given is removed."""
    given = (max_containers, max_cpu, max_gpus, max_volume, max_code, max_blob)
    if all(value is None for value in given):
        fail(
            "give at least one of --max-containers, --max-cpu, --max-gpus, --max-volume, --max-code, --max-blob "
            "(or use `quota clear` to go back to the default quota)",
            as_json,
        )
    try:
        cpu_millis = parse_cpu(max_cpu) if max_cpu is not None else None
    except ConfigError as exc:
        fail(f"--max-cpu: {exc}", as_json)
    body = {
        "max_containers": max_containers,
        "max_cpu_millis": cpu_millis,
        "max_gpus": max_gpus,
        "max_volume_bytes": _bytes("--max-volume", max_volume, as_json),
        "max_code_bytes": _bytes("--max-code", max_code, as_json),
        "max_blob_bytes": _bytes("--max-blob", max_blob, as_json),
    }
    api = client(as_json)
    name = _workspace(api, workspace, as_json)
    with errors(as_json):
        result = api.request("PUT", f"/api/v1/workspaces/{name}/quota", json=body)
    emit(result, as_json, lambda: _show(result))


@quota_app.command("clear")
def quota_clear(workspace: str | None = WorkspaceArg, as_json: bool = JsonOption) -> None:
    """Remove a workspace's own limits, so the default quota applies again (needs an admin token)."""
    api = client(as_json)
    name = _workspace(api, workspace, as_json)
    with errors(as_json):
        result = api.request("DELETE", f"/api/v1/workspaces/{name}/quota")
    emit(result, as_json, lambda: _show(result))
