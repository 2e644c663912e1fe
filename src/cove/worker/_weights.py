"""The node weight cache: model files fetched from the reservoir once per machine, shared read-only.

Layout under ``root`` (one per worker machine)::

    blobs/<sha256>                                   each file once, read-only, by content
    hub/models--ORG--NAME/blobs/<sha256>             hard links to ``blobs/`` (same inode: no copy)
    hub/models--ORG--NAME/snapshots/<commit>/<path>  relative symlinks to ../blobs/<sha256>
    hub/models--ORG--NAME/refs/<revision>            the commit a revision name stood for
    tmp/                                             downloads in progress (never read)

``hub/`` is a Hugging Face cache: a container gets ``hub/models--ORG--NAME``
mounted read-only at the same place under its ``HF_HUB_CACHE`` with
``HF_HUB_OFFLINE=1``, so ``huggingface_hub`` and ``transformers`` find the
weights by name and revision without any network, and every container of the
machine reads the same pages.

A file is downloaded to ``tmp/``, hashed as it arrives, fsynced, checked
against the sha256 the reservoir lists and only then renamed into ``blobs/``:
a partly fetched or corrupted file is never seen. Concurrent requests for one
commit wait for a single fetch. Over the size limit, the least recently used
commits that no running container holds are removed, then blobs no commit
links to any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from .._wire.models import ModelRef

CHUNK = 1024 * 1024


_COMMIT = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _listing(ref: ModelRef, info: dict[str, Any]) -> tuple[str, list[tuple[str, str, int]]]:
    """The commit and files (path, sha256, size) a reservoir's model info names, each checked before it becomes
    a path in the cache: a commit id, content hashes, and file paths that stay inside the snapshot."""
    commit = str(info.get("sha", ""))
    if not _COMMIT.match(commit):
        raise WeightsError(f"the reservoir named {ref} by an invalid commit id {commit[:80]!r}")
    files = []
    for sibling in info.get("siblings", []):
        path, sha, size = str(sibling["rfilename"]), str(sibling["sha256"]), int(sibling["size"])
        parts = path.split("/")
        if not _SHA256.match(sha) or size < 0 or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise WeightsError(f"the reservoir listed an unsafe file for {ref}: {path[:200]!r}")
        files.append((path, sha, size))
    return commit, files


class WeightsError(RuntimeError):
    """A model cannot be fetched: unknown, quarantined, unreachable reservoir or a file that fails its hash."""


@dataclasses.dataclass(frozen=True)
class CachedModel:
    """One commit held in the cache; ``folder`` is what gets mounted (the repository's cache folder)."""

    repo: str
    revision: str
    commit: str
    folder: Path
    size: int

    @property
    def snapshot(self) -> Path:
        return self.folder / "snapshots" / self.commit


@dataclasses.dataclass
class Progress:
    """Bytes fetched so far of one commit, for ``cove ps`` and 503 bodies."""

    repo: str
    revision: str
    total: int = 0
    done: int = 0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def repo_folder_name(repo: str) -> str:
    """The Hugging Face cache's folder name for a model repository."""
    return "models--" + repo.replace("/", "--")


class WeightCache:
    """Fetches, shares, pins and evicts model commits on one machine (one instance per worker process)."""

    def __init__(self, root: Path, endpoint: str, limit_bytes: int, *, client: httpx.AsyncClient | None = None):
        self.root = root
        self.endpoint = endpoint.rstrip("/")
        self.limit_bytes = limit_bytes
        self._client = client
        self._fetching: dict[tuple[str, str], asyncio.Task[CachedModel]] = {}
        self._pins: dict[tuple[str, str], int] = {}  # (repo, commit) -> containers using it
        self.progress: dict[tuple[str, str], Progress] = {}
        self.fetched_files = 0  # files downloaded since start (a cache hit downloads none)
        self.hits = 0  # acquisitions the cache answered without downloading a file
        self.misses = 0  # acquisitions that had to download at least one file
        # What the cache holds, read from disk once and then kept up to date by fetches and evictions (the
        # heartbeat asks every few seconds): (repo, commit) -> {repo, commit, revisions, bytes, used}.
        self._listing: dict[tuple[str, str], dict[str, Any]] | None = None
        self.scans = 0  # full reads of the disk (one at start, one after each rescan())
        for sub in ("blobs", "hub", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for leftover in (root / "tmp").iterdir():  # a fetch a crash interrupted: never used, never resumed
            leftover.unlink(missing_ok=True)

    # -- using a model ----------------------------------------------------------------------------------------

    async def acquire(self, ref: ModelRef, endpoint: str | None = None) -> CachedModel:
        """The commit ``ref`` names, fetched once if missing (from ``endpoint``, else the cache's), pinned until
        :meth:`release`."""
        key = (ref.repo, ref.revision)
        task = self._fetching.get(key)
        if task is None:
            task = asyncio.ensure_future(self._ensure(ref, (endpoint or self.endpoint).rstrip("/")))
            self._fetching[key] = task
            task.add_done_callback(lambda _t: self._fetching.pop(key, None))
        model = await asyncio.shield(task)
        self._pins[(model.repo, model.commit)] = self._pins.get((model.repo, model.commit), 0) + 1
        os.utime(model.snapshot)  # the least recently used order survives restarts
        entry = self._entries().get((model.repo, model.commit))
        if entry is not None:
            entry["used"] = model.snapshot.stat().st_mtime
        return model

    def release(self, model: CachedModel) -> None:
        key = (model.repo, model.commit)
        left = self._pins.get(key, 0) - 1
        if left > 0:
            self._pins[key] = left
        else:
            self._pins.pop(key, None)

    def held(self) -> list[dict[str, Any]]:
        """Commits in the cache, most recently used first (what ``cove worker list`` shows).

        Answered from the listing kept in memory: the disk is read once, then each fetch and eviction updates
        the entries of the repository it touched (this process is the cache's only writer).
        """
        out = [entry | {"in_use": self._pins.get(key, 0)} for key, entry in self._entries().items()]
        return sorted(out, key=lambda m: -float(m["used"]))

    def rescan(self) -> None:
        """Forget the listing kept in memory; the next :meth:`held` reads the disk again."""
        self._listing = None

    def _entries(self) -> dict[tuple[str, str], dict[str, Any]]:
        if self._listing is None:
            self.scans += 1
            self._listing = {}
            for folder in sorted((self.root / "hub").glob("models--*")):
                self._listing.update(_scan_repo(folder))
        return self._listing

    def _rescan_repo(self, repo: str) -> None:
        """Re-read one repository's folder after a fetch or an eviction changed it."""
        if self._listing is None:
            return
        folder = self.root / "hub" / repo_folder_name(repo)
        listing = {key: entry for key, entry in self._listing.items() if key[0] != repo}
        if folder.is_dir():
            listing.update(_scan_repo(folder))
        self._listing = listing  # replaced whole: runs in a thread while the heartbeat may be reading the old one

    def size(self) -> int:
        return sum(p.stat().st_size for p in (self.root / "blobs").iterdir())

    # -- fetching ----------------------------------------------------------------------------------------------

    async def _ensure(self, ref: ModelRef, endpoint: str) -> CachedModel:
        folder = self.root / "hub" / repo_folder_name(ref.repo)
        client = self._client or httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=300.0))
        try:
            info = await self._info(client, ref, endpoint)
            commit, files = _listing(ref, info)
            snapshot = folder / "snapshots" / commit
            size = sum(f[2] for f in files)
            missing = not _complete(snapshot, files)
            if missing:
                self.misses += 1
                progress = self.progress.setdefault((ref.repo, ref.revision), Progress(ref.repo, ref.revision))
                progress.total = size
                progress.done = sum(f[2] for f in files if (self.root / "blobs" / f[1]).is_file())
                try:
                    for path, sha, length in files:
                        if not (self.root / "blobs" / sha).is_file():
                            await self._download(client, endpoint, ref.repo, commit, path, sha, length, progress)
                    await asyncio.to_thread(self._link, folder, commit, files)
                finally:
                    self.progress.pop((ref.repo, ref.revision), None)
            else:
                self.hits += 1
            named = folder / "refs" / ref.revision  # nested for ``release/2``, as huggingface_hub reads it
            named.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(named, commit.encode())
            await asyncio.to_thread(self._rescan_repo, ref.repo)
        finally:
            if self._client is None:
                await client.aclose()
        model = CachedModel(ref.repo, ref.revision, commit, folder, size)
        await asyncio.to_thread(self.evict, keep={(ref.repo, commit)})
        return model

    async def _info(self, client: httpx.AsyncClient, ref: ModelRef, endpoint: str) -> dict[str, Any]:
        url = f"{endpoint}/api/models/{ref.repo}/revision/{quote(ref.revision, safe='')}"
        try:
            answer = await client.get(url, params={"blobs": "true"})
        except httpx.HTTPError as exc:
            raise WeightsError(f"cannot reach the reservoir at {endpoint} for {ref}: {exc}") from None
        if answer.status_code != 200:
            try:
                reason = answer.json().get("error") or answer.text
            except ValueError:
                reason = answer.text
            raise WeightsError(f"the reservoir has no usable {ref}: {reason.strip()}")
        return dict(answer.json())

    async def _download(
        self,
        client: httpx.AsyncClient,
        endpoint: str,
        repo: str,
        commit: str,
        path: str,
        sha: str,
        size: int,
        progress: Progress,
    ) -> None:
        """One file into ``blobs/``: temp file, hash while writing, fsync, compare, rename."""
        tmp = self.root / "tmp" / f"{sha[:16]}-{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        url = f"{endpoint}/{repo}/resolve/{commit}/{quote(path)}"
        try:
            with tmp.open("wb") as out:
                async with client.stream("GET", url) as answer:
                    if answer.status_code != 200:
                        raise WeightsError(f"fetching {repo}/{path}: HTTP {answer.status_code}")
                    async for chunk in answer.aiter_bytes(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        progress.done += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha or tmp.stat().st_size != size:
                raise WeightsError(f"{repo}/{path} does not match its sha256 {sha}; not used")
            os.chmod(tmp, 0o444)
            os.replace(tmp, self.root / "blobs" / sha)
            self.fetched_files += 1
        except httpx.HTTPError as exc:
            raise WeightsError(f"fetching {repo}/{path}: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)

    def _link(self, folder: Path, commit: str, files: list[tuple[str, str, int]]) -> None:
        """Build the commit's snapshot beside the others, then rename it into place (readers see all or none)."""
        blobs = folder / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        staging = folder / "snapshots" / f".{commit}-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        for path, sha, _size in files:
            linked = blobs / sha
            if not linked.exists():
                with contextlib.suppress(FileExistsError):
                    os.link(self.root / "blobs" / sha, linked)
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            depth = len(Path(path).parts) + 1  # up through the path's folders, the commit and ``snapshots``
            os.symlink(os.path.join(*([".."] * depth), "blobs", sha), target)
        final = folder / "snapshots" / commit
        try:
            os.rename(staging, final)
        except OSError:  # another process finished the same commit first
            shutil.rmtree(staging, ignore_errors=True)

    # -- eviction ----------------------------------------------------------------------------------------------

    def evict(self, keep: set[tuple[str, str]] = frozenset()) -> list[str]:  # type: ignore[assignment]
        """Remove least recently used unpinned commits while the cache is over its limit; return what went."""
        removed: list[str] = []
        if self.size() <= self.limit_bytes:
            return removed
        candidates = []
        for entry in self.held():
            key = (entry["repo"], entry["commit"])
            if not entry["in_use"] and key not in keep:
                candidates.append((float(entry["used"]), key))
        for _used, (repo, commit) in sorted(candidates):
            if self.size() <= self.limit_bytes:
                break
            folder = self.root / "hub" / repo_folder_name(repo)
            shutil.rmtree(folder / "snapshots" / commit, ignore_errors=True)
            for ref in (folder / "refs").rglob("*"):
                if ref.is_file() and ref.read_text().strip() == commit:
                    ref.unlink(missing_ok=True)
            self._drop_unlinked(folder)
            self._rescan_repo(repo)
            removed.append(f"{repo}@{commit}")
        return removed

    def _drop_unlinked(self, folder: Path) -> None:
        """Blobs no snapshot of ``folder`` points at leave it; shared blobs leave the store at link count 1."""
        wanted = {os.path.basename(os.readlink(p)) for p in (folder / "snapshots").rglob("*") if p.is_symlink()}
        for blob in (folder / "blobs").glob("*"):
            if blob.name not in wanted:
                blob.unlink(missing_ok=True)
        for blob in (self.root / "blobs").iterdir():
            if blob.stat().st_nlink == 1:
                blob.unlink(missing_ok=True)
        if not any((folder / "snapshots").iterdir()):
            shutil.rmtree(folder, ignore_errors=True)


def _scan_repo(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The commits one ``models--ORG--NAME`` folder holds, with the revision names pointing at each."""
    repo = folder.name[len("models--") :].replace("--", "/", 1)
    refs = folder / "refs"
    revisions = {p.relative_to(refs).as_posix(): p.read_text().strip() for p in refs.rglob("*") if p.is_file()}
    found = {}
    for snap in (folder / "snapshots").glob("*"):
        if snap.name.startswith("."):  # a snapshot being built
            continue
        found[(repo, snap.name)] = {
            "repo": repo,
            "commit": snap.name,
            "revisions": sorted(r for r, c in revisions.items() if c == snap.name),
            "bytes": _snapshot_size(snap),
            "used": snap.stat().st_mtime,
        }
    return found


def _complete(snapshot: Path, files: list[tuple[str, str, int]]) -> bool:
    return snapshot.is_dir() and all((snapshot / path).is_file() for path, _sha, _size in files)


def _snapshot_size(snapshot: Path) -> int:
    return sum(p.stat().st_size for p in snapshot.rglob("*") if p.is_file())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


__all__ = ["CachedModel", "Progress", "WeightCache", "WeightsError", "repo_folder_name"]
