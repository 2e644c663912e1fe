"""``cove secret …`` and ``cove volume …``: a workspace's secrets and persistent files."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import typer

from ._output import JsonOption, client, console, emit, errors, fail, table

secret_app = typer.Typer(help="Secrets: encrypted variables injected into containers.", no_args_is_help=True)
volume_app = typer.Typer(help="Volumes: persistent folders shared by a workspace's containers.", no_args_is_help=True)

VolumeOption = typer.Option(..., "--volume", "-v", help="The volume's name.")


@secret_app.command("create")
def secret_create(
    name: str = typer.Argument(..., help="The secret's name, as listed in secrets=[...]."),
    pairs: list[str] = typer.Argument(..., help="KEY=VALUE pairs (replaces all values of an existing secret)."),
    as_json: bool = JsonOption,
) -> None:
    """Create a secret, or replace its values; values are never shown again."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"{pair.split('=')[0]!r}: give values as KEY=VALUE", as_json)
        values[key] = value
    api = client(as_json)
    with errors(as_json):
        result = api.request("POST", "/api/v1/secrets", json={"name": name, "values": values})
    emit(result, as_json, lambda: console.print(f"secret {name}: {', '.join(result['keys'])}", highlight=False))


@secret_app.command("list")
def secret_list(as_json: bool = JsonOption) -> None:
    """Secrets of this workspace with their key names (never their values)."""
    api = client(as_json)
    with errors(as_json):
        rows = api.request("GET", "/api/v1/secrets")
    emit(rows, as_json, lambda: table(["NAME", "KEYS"], [[r["name"], ", ".join(r["keys"])] for r in rows]))


@secret_app.command("rm")
def secret_rm(name: str = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Delete a secret; containers that name it no longer start."""
    api = client(as_json)
    with errors(as_json):
        result = api.request("DELETE", f"/api/v1/secrets/{quote(name, safe='')}")
    emit(result, as_json, lambda: console.print(f"deleted secret {name}"))


def _files_url(volume: str, remote: str) -> str:
    """Each segment percent-encoded, dots too, so no client normalises ``..`` away: the server judges the path."""
    segments = [
        quote(s, safe="").replace(".", "%2E") if s in (".", "..") else quote(s, safe="") for s in remote.split("/")
    ]
    return f"/api/v1/volumes/{quote(volume, safe='')}/files/{'/'.join(segments)}"


@volume_app.command("ls")
def volume_ls(
    path: str = typer.Argument("", help="A folder inside the volume."),
    volume: str | None = typer.Option(None, "--volume", "-v", help="List this volume's files (else: the volumes)."),
    as_json: bool = JsonOption,
) -> None:
    """List volumes, or the files of one volume."""
    api = client(as_json)
    with errors(as_json):
        if volume is None:
            rows = api.request("GET", "/api/v1/volumes")
            emit(rows, as_json, lambda: table(["NAME"], [[r["name"]] for r in rows]))
            return
        files = api.request("GET", f"/api/v1/volumes/{quote(volume, safe='')}/files", params={"path": path})
    emit(files, as_json, lambda: table(["NAME", "TYPE", "SIZE"], [[f["name"], f["type"], f["size"]] for f in files]))


@volume_app.command("put")
def volume_put(
    local: Path = typer.Argument(..., help="A local file."),
    remote: str = typer.Argument(..., help="Path inside the volume."),
    volume: str = VolumeOption,
    as_json: bool = JsonOption,
) -> None:
    """Upload a file into a volume (the volume is created if needed)."""
    if not local.is_file():
        fail(f"{local} is not a file", as_json)
    api = client(as_json)
    with errors(as_json), local.open("rb") as f:
        result = api.request("PUT", _files_url(volume, remote), content=iter(lambda: f.read(1 << 20), b""))
    emit(result, as_json, lambda: console.print(f"uploaded {result['size']} bytes to {volume}:{remote}"))


@volume_app.command("get")
def volume_get(
    remote: str = typer.Argument(..., help="Path inside the volume."),
    local: Path = typer.Argument(..., help="Where to write it here."),
    volume: str = VolumeOption,
    as_json: bool = JsonOption,
) -> None:
    """Download a file from a volume (written to a temporary file, then renamed)."""
    api = client(as_json)
    tmp = local.with_name(f".{local.name}.cove-{os.getpid()}")
    size = 0
    with errors(as_json):
        try:
            with api.stream_bytes("GET", _files_url(volume, remote)) as chunks, tmp.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    size += len(chunk)
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
    result = {"volume": volume, "path": remote, "local": str(local), "size": size}
    emit(result, as_json, lambda: console.print(f"downloaded {size} bytes to {local}"))


@volume_app.command("rm")
def volume_rm(
    remote: str = typer.Argument(..., help="Path inside the volume."),
    volume: str = VolumeOption,
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Remove a folder and everything in it."),
    as_json: bool = JsonOption,
) -> None:
    """Delete a file (or, with -r, a folder) from a volume."""
    api = client(as_json)
    with errors(as_json):
        result = api.request("DELETE", _files_url(volume, remote), params={"recursive": recursive})
    emit(result, as_json, lambda: console.print(f"deleted {volume}:{remote}"))
