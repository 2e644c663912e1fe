"""Content-addressed files this gateway serves: from its own home, else from the database or a peer, then kept.

Gateways of one cluster share no folder, so a code archive uploaded through
one, a blob stored through another and an image built on the leader are each
in one home only. A gateway asked for one it lacks takes it from the database
(small code archives are kept there on PostgreSQL), else from the first live
peer that has it (:mod:`cove._wire.peers`), checks the bytes against the hash
and keeps them in its own home, so it is fetched once. Concurrent requests for
one file wait on one fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from cove._host.home import Home
from cove._wire import peers as wire

from ..cluster import Presence
from ..store import Store, code_data
from ._blob_paths import blob_path
from ._image_export import Archive, peer_exports_dir

log = logging.getLogger("cove.gateway.content")

# Code archives up to this size are also kept in the database (PostgreSQL), so they outlive every gateway's home.
SMALL_CODE_BYTES = 8 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class _Fetched:
    path: Path
    sha256: str


class Content:
    """Finds content-addressed files for this gateway: its home, the database, then its peers."""

    def __init__(self, home: Home, store: Store, presence: Presence, token: str) -> None:
        self.home = home
        self.store = store
        self.presence = presence
        self.token = token
        self._client: httpx.AsyncClient | None = None
        self._fetching: dict[Path, asyncio.Future[_Fetched | None]] = {}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def keeps_in_database(self, size: int) -> bool:
        """Whether an uploaded code archive of ``size`` bytes goes into the database too (shared store only)."""
        return self.store.is_postgres and size <= SMALL_CODE_BYTES

    # -- what is asked for ---------------------------------------------------------------

    def local_code(self, code_hash: str) -> Path | None:
        path = self.home.code_blobs / f"{code_hash}.tar.gz"
        return path if path.is_file() else None

    async def code(self, code_hash: str) -> Path | None:
        """The code archive, wherever it is in the cluster; None if nobody has it."""
        local = self.local_code(code_hash)
        if local is not None:
            return local
        dest = self.home.code_blobs / f"{code_hash}.tar.gz"
        fetched = await self._once(dest, lambda: self._code_from_cluster(code_hash, dest))
        return fetched.path if fetched else None

    def local_blob(self, workspace_id: str, sha256: str) -> Path | None:
        path = blob_path(self.home.root, workspace_id, sha256)
        return path if path.is_file() else None

    async def blob(self, workspace_id: str, sha256: str) -> Path | None:
        """One workspace's blob, wherever it is in the cluster; None if nobody has it."""
        local = self.local_blob(workspace_id, sha256)
        if local is not None:
            return local
        dest = blob_path(self.home.root, workspace_id, sha256)
        fetched = await self._once(dest, lambda: self._from_peers(wire.blob_route(workspace_id, sha256), dest, sha256))
        return fetched.path if fetched else None

    def local_export(self, image_id: str, part: str) -> Archive | None:
        """An image's archive fetched from a peer earlier (this gateway did not build the image)."""
        path = self._export_path(image_id, part)
        digest = path.with_suffix(".sha256")
        if not (path.is_file() and digest.is_file()):
            return None
        return Archive(path, digest.read_text().strip(), path.stat().st_size)

    async def export(self, image_id: str, part: str) -> Archive | None:
        """A part of an image another gateway built, fetched from it once; None if no peer has it."""
        cached = self.local_export(image_id, part)
        if cached is not None:
            return cached
        dest = self._export_path(image_id, part)
        fetched = await self._once(dest, lambda: self._from_peers(wire.export_route(image_id, part), dest, None))
        if fetched is None:
            return None
        await asyncio.to_thread(dest.with_suffix(".sha256").write_text, fetched.sha256 + "\n")
        return Archive(fetched.path, fetched.sha256, fetched.path.stat().st_size)

    def _export_path(self, image_id: str, part: str) -> Path:
        return peer_exports_dir(self.home) / f"{image_id}-{part}.tgz"

    # -- fetching ----------------------------------------------------------------------------

    async def _once(self, dest: Path, fetch: Callable[[], Awaitable[_Fetched | None]]) -> _Fetched | None:
        """One fetch per file at a time: the others asking meanwhile wait for its outcome."""
        pending = self._fetching.get(dest)
        if pending is None:
            pending = self._fetching[dest] = asyncio.ensure_future(fetch())
            pending.add_done_callback(lambda _: self._fetching.pop(dest, None))
        return await asyncio.shield(pending)

    async def _code_from_cluster(self, code_hash: str, dest: Path) -> _Fetched | None:
        """A code archive from the database (small ones, on PostgreSQL), else from a peer."""
        if self.store.is_postgres:
            data = await code_data(self.store, code_hash)
            if data is not None and hashlib.sha256(data).hexdigest() == code_hash:
                await asyncio.to_thread(_write_atomically, dest, data)
                return _Fetched(dest, code_hash)
        return await self._from_peers(wire.code_route(code_hash), dest, code_hash)

    async def _from_peers(self, route: str, dest: Path, sha256: str | None) -> _Fetched | None:
        """The first peer's copy whose bytes hash to ``sha256`` (or to the hash the peer announces)."""
        for url in list(self.presence.peers):
            try:
                digest = await self._download(url + route, dest, sha256)
            except (httpx.HTTPError, OSError) as exc:
                log.warning("fetching %s from the gateway at %s failed: %r", route, url, exc)
                continue
            if digest is not None:
                log.info("fetched %s from the gateway at %s", route, url)
                return _Fetched(dest, digest)
        return None

    async def _download(self, url: str, dest: Path, sha256: str | None) -> str | None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0))
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.urandom(6).hex()}.part")
        try:
            async with self._client.stream("GET", url, headers={wire.TOKEN_HEADER: self.token}) as reply:
                if reply.status_code != 200:
                    return None
                expected = sha256 or reply.headers.get(wire.SHA256_HEADER, "")
                digest = hashlib.sha256()
                with tmp.open("wb") as fh:
                    async for chunk in reply.aiter_bytes(_CHUNK):
                        digest.update(chunk)
                        await asyncio.to_thread(fh.write, chunk)
            if not expected or digest.hexdigest() != expected:
                log.warning("%s answered bytes hashing to %s, not %s; ignored", url, digest.hexdigest(), expected)
                return None
            os.replace(tmp, dest)
            return expected
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _write_atomically(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.urandom(6).hex()}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
