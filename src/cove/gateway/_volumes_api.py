"""``/api/v1/volumes``: a workspace's persistent folders and the files in them.

Every path is relative to the volume and opened component by component
without following symlinks (``cove._host.safepath``): a container that plants a
symlink in a volume cannot make the gateway read or write outside it.
Uploads stream to a spool file first and are renamed into place whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field

from cove._host import safepath
from cove._host.rmtree import remove_tree
from cove._host.volumes import ensure_volume, file_owner, volume_path, volumes_root

from .._wire import api as wire
from .._wire.names import check_name
from ..exceptions import ConfigError
from ..store import Principal
from ._body import RequestBody
from ._deps import GatewayDep, PrincipalDep
from ._errors import ApiError
from ._patterns import OBJECT_NAME, ObjectName
from ._quotas_api import check_disk_quota
from ._state import Gateway

router = APIRouter(prefix="/api/v1")


def _name(name: str) -> str:
    try:
        return check_name("volume", name)
    except ConfigError as exc:
        raise ApiError(400, str(exc)) from None


def _existing(gw: Gateway, who: Principal, name: str) -> Path:
    path = volume_path(gw.settings.home.root, who.workspace_id, _name(name))
    if not path.is_dir():
        raise ApiError(404, f"volume {name!r} does not exist")
    return path


@contextlib.contextmanager
def _file_errors(path: str) -> Iterator[None]:
    try:
        yield
    except safepath.UnsafePath as exc:
        raise ApiError(400, f"unsafe path: {exc}") from None
    except FileNotFoundError:
        raise ApiError(404, f"{path!r} does not exist") from None
    except (IsADirectoryError, NotADirectoryError) as exc:
        raise ApiError(400, str(exc)) from None


class VolumeRequest(RequestBody):
    name: str = Field(pattern=OBJECT_NAME)


@router.get("/volumes", response_model=list[wire.VolumeRef])
async def list_volumes(gw: GatewayDep, who: PrincipalDep) -> list[dict[str, Any]]:
    folder = volumes_root(gw.settings.home.root) / who.workspace_id
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return [{"name": name} for name in names]


@router.post("/volumes", status_code=201, response_model=wire.VolumeRef)
async def create_volume(body: VolumeRequest, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    await asyncio.to_thread(ensure_volume, gw.settings.home.root, who.workspace_id, _name(body.name))
    return {"name": body.name}


@router.delete("/volumes/{name}", response_model=wire.VolumeDeleted)
async def delete_volume(name: ObjectName, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    path = _existing(gw, who, name)
    await asyncio.to_thread(remove_tree, path)
    return {"name": name, "deleted": True}


@router.get("/volumes/{name}/files", response_model=list[wire.FileEntry])
async def list_files(
    name: ObjectName, gw: GatewayDep, who: PrincipalDep, path: Annotated[str, Query(max_length=4096)] = ""
) -> list[dict[str, Any]]:
    root = _existing(gw, who, name)
    with _file_errors(path):
        return await asyncio.to_thread(safepath.listing, str(root), path)


@router.put("/volumes/{name}/files/{path:path}", status_code=201, response_model=wire.FileStored)
async def put_file(name: ObjectName, path: str, request: Request, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    with _file_errors(path):
        safepath.split(path)  # refuse a bad path before reading a byte of the body
    root = await asyncio.to_thread(ensure_volume, gw.settings.home.root, who.workspace_id, _name(name))
    spool_dir = volumes_root(gw.settings.home.root) / ".incoming"
    spool_dir.mkdir(mode=0o700, exist_ok=True)
    spool = spool_dir / f"{os.getpid()}-{os.urandom(8).hex()}"
    try:
        with spool.open("wb") as out:
            async for chunk in request.stream():
                await asyncio.to_thread(out.write, chunk)
        await check_disk_quota(gw, who, "volume", spool.stat().st_size)

        def install() -> int:
            with spool.open("rb") as src:
                return safepath.write(str(root), path, iter(lambda: src.read(1 << 20), b""), owner=file_owner())

        with _file_errors(path):
            size = await asyncio.to_thread(install)
    finally:
        spool.unlink(missing_ok=True)
    return {"volume": name, "path": path, "size": size}


@router.get(
    "/volumes/{name}/files/{path:path}",
    response_class=StreamingResponse,
    responses={200: wire.binary("application/octet-stream", "The file's bytes")},
)
async def get_file(name: ObjectName, path: str, gw: GatewayDep, who: PrincipalDep) -> StreamingResponse:
    root = _existing(gw, who, name)
    with _file_errors(path):
        fd = await asyncio.to_thread(safepath.open_read, str(root), path)
    size = os.fstat(fd).st_size
    return StreamingResponse(
        safepath.read_chunks(fd), media_type="application/octet-stream", headers={"Content-Length": str(size)}
    )


@router.delete("/volumes/{name}/files/{path:path}", response_model=wire.FileDeleted)
async def delete_file(
    name: ObjectName, path: str, gw: GatewayDep, who: PrincipalDep, recursive: bool = False
) -> dict[str, Any]:
    root = _existing(gw, who, name)
    with _file_errors(path):
        await asyncio.to_thread(safepath.remove, str(root), path, recursive)
    return {"volume": name, "path": path, "deleted": True}
