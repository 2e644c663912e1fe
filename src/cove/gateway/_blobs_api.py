"""The blob store: large call arguments and results, content-addressed, per workspace.

``PUT /api/v1/blobs/{sha256}`` stores a body whose sha256 must be the name
(400 otherwise: a blob can never hold what its name does not promise), up to
``max_blob_bytes`` (413). ``GET`` and ``HEAD`` read it back. Blobs live in
``$COVE_HOME/blobs/data/<workspace id>/``, so one workspace can neither read
nor overwrite another's. The body is hashed and written as it streams in,
never held whole in memory, and appears under its name only once complete.
Blobs not used for ``BLOB_TTL_SECONDS`` are removed by a sweep that runs
after stores, at most once per ``SWEEP_EVERY_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from .._wire import api as wire
from ._blob_paths import blob_path, blobs_root
from ._deps import GatewayDep, PrincipalDep
from ._errors import ApiError
from ._patterns import Sha256
from ._quotas_api import check_disk_quota

router = APIRouter(prefix="/api/v1/blobs")

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FLUSH_BYTES = 4 * 1024 * 1024
BLOB_TTL_SECONDS = 24 * 3600
SWEEP_EVERY_SECONDS = 3600
_last_sweep = [0.0]


def _checked(sha256: str) -> str:
    if not _SHA256.fullmatch(sha256):
        raise ApiError(400, f"blob name {sha256!r} is not a lowercase hex sha256 (64 characters)")
    return sha256


def _write(fh: Any, chunks: list[bytes]) -> None:
    fh.write(b"".join(chunks))


@router.put(
    "/{sha256}", status_code=201, summary="Store a blob named by the sha256 of its body", response_model=wire.BlobStored
)
async def put_blob(sha256: Sha256, request: Request, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    _checked(sha256)
    limit = gw.settings.max_blob_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"blob of {int(declared)} bytes exceeds the limit of {limit} bytes")
    path = blob_path(gw.settings.home.root, who.workspace_id, sha256)
    if path.exists():
        with contextlib.suppress(OSError):
            os.utime(path)
        return {"sha256": sha256, "size": path.stat().st_size, "stored": False}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{sha256}.{os.urandom(6).hex()}.part")
    digest = hashlib.sha256()
    size = 0
    try:
        with tmp.open("wb") as fh:
            pending: list[bytes] = []
            pending_size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"blob exceeds the limit of {limit} bytes")
                digest.update(chunk)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= _FLUSH_BYTES:
                    await asyncio.to_thread(_write, fh, pending)
                    pending, pending_size = [], 0
            await asyncio.to_thread(_write, fh, pending)
        actual = digest.hexdigest()
        if actual != sha256:
            raise ApiError(400, f"the body's sha256 is {actual}, not the {sha256} it was stored as")
        await check_disk_quota(gw, who, "blob", size)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _maybe_sweep(gw.settings.home.root)
    return {"sha256": sha256, "size": size, "stored": True}


async def _found(gw: Any, who: Any, sha256: str) -> Path:
    """The blob's file here, fetched from the gateway of the cluster that stored it if this one lacks it."""
    path = await gw.content.blob(who.workspace_id, _checked(sha256))
    if path is None:
        raise ApiError(404, f"no blob {sha256} in this workspace (blobs unused for a day are removed)")
    return Path(path)


@router.get(
    "/{sha256}",
    summary="Read a blob",
    response_class=FileResponse,
    responses={200: wire.binary("application/octet-stream", "The blob's bytes")},
)
async def get_blob(sha256: Sha256, gw: GatewayDep, who: PrincipalDep) -> FileResponse:
    path = await _found(gw, who, sha256)
    with contextlib.suppress(OSError):
        os.utime(path)
    return FileResponse(path, media_type="application/octet-stream")


@router.head(
    "/{sha256}",
    summary="Whether a blob is stored, and its size",
    response_class=Response,
    responses={200: wire.no_body("The blob is stored", headers={"Content-Length": "Its size in bytes"})},
)
async def head_blob(sha256: Sha256, gw: GatewayDep, who: PrincipalDep) -> Response:
    path = await _found(gw, who, sha256)
    return Response(headers={"content-length": str(path.stat().st_size)}, media_type="application/octet-stream")


def _maybe_sweep(home_root: Path) -> None:
    now = time.monotonic()
    if now - _last_sweep[0] < SWEEP_EVERY_SECONDS:
        return
    _last_sweep[0] = now
    task = asyncio.get_running_loop().run_in_executor(None, sweep, home_root, time.time() - BLOB_TTL_SECONDS)
    task.add_done_callback(lambda f: f.exception())


def sweep(home_root: Path, older_than: float) -> int:
    """Remove blobs (and abandoned partial uploads) not used since ``older_than``; return how many."""
    removed = 0
    for folder, _dirs, files in os.walk(blobs_root(home_root)):
        for name in files:
            path = Path(folder) / name
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < older_than:
                    path.unlink()
                    removed += 1
    return removed
