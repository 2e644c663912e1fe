"""Syncing a model repository from an upstream hub (the Hugging Face Hub, or another reservoir) over its HTTP API.

``cove reservoir model sync ORG/NAME --revision R --upstream URL`` asks the
upstream's model info at that revision (``/api/models/ORG/NAME/revision/R?blobs=true``)
for the commit and its files, downloads each file at that commit
(``/ORG/NAME/resolve/COMMIT/PATH``, following the Hub's redirects to its file
store) and records them as a commit here, exactly as ``model add`` would: the
same content gives the same commit id, the card's license goes through the
policy, and the files land in the content-addressed store.

Every file is checked before it is recorded: against the sha256 the upstream
lists for large (LFS) files, and against its git blob id for the others. A
file whose content the store already holds by sha256 is not downloaded again,
so a sync interrupted half way resumes where it stopped, and a new revision
fetches only the files that changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from ..errors import ReservoirError, ReservoirNotFound
from . import ingest
from .names import COMMIT, check_path, check_repo, check_revision

if TYPE_CHECKING:
    from ..store import Store

DEFAULT_UPSTREAM = "https://huggingface.co"
TIMEOUT = httpx.Timeout(30.0, read=300.0)
CHUNK = 1024 * 1024
Progress = Callable[[str, int, int], None]  # (path, bytes of the repository done, total bytes)


@dataclasses.dataclass(frozen=True)
class SyncResult:
    """What a sync did: the commit recorded here, and how much crossed the network."""

    added: ingest.AddResult
    upstream: str
    upstream_commit: str
    downloaded_files: int
    downloaded_bytes: int

    def to_json(self) -> dict[str, Any]:
        return self.added.to_json() | {
            "upstream": self.upstream,
            "upstream_commit": self.upstream_commit,
            "downloaded_files": self.downloaded_files,
            "downloaded_bytes": self.downloaded_bytes,
        }


@dataclasses.dataclass(frozen=True)
class _Sibling:
    path: str
    size: int | None
    sha256: str | None  # listed for LFS files (and by a reservoir for every file)
    blob_id: str | None  # git blob id: what the Hub lists for a file that is not in LFS


def default_upstream() -> str:
    """``HF_ENDPOINT`` when set (a mirror the site already uses), else the public Hub."""
    return os.environ.get("HF_ENDPOINT") or DEFAULT_UPSTREAM


def sync_model(
    store: Store,
    repo: str,
    *,
    revision: str,
    upstream: str,
    name: str | None = None,
    token: str | None = None,
    client: httpx.Client | None = None,
    progress: Progress | None = None,
) -> SyncResult:
    """Fetch ``repo`` at ``revision`` from ``upstream`` and record it here under ``name`` (default ``revision``)."""
    check_repo(repo)
    local_name = name or revision
    if COMMIT.match(local_name) and name is None:
        raise ReservoirError(f"{revision!r} is a commit id: give a revision name to record it under (--as NAME)")
    check_revision(local_name)
    base = upstream.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = client or httpx.Client(timeout=TIMEOUT, follow_redirects=True)
    try:
        commit, siblings = _info(http, base, repo, revision, headers)
        total = sum(s.size or 0 for s in siblings)
        files, fetched, fetched_bytes, done = [], 0, 0, 0
        for sibling in siblings:
            if sibling.sha256 and store.blobs.has(sibling.sha256):
                sha, size = sibling.sha256, store.blobs.size(sibling.sha256)
            else:
                sha, size = _download(store, http, base, repo, commit, sibling, headers)
                fetched, fetched_bytes = fetched + 1, fetched_bytes + size
            _check_size(repo, sibling, size)
            files.append({"path": sibling.path, "sha256": sha, "size": size})
            done += size
            if progress:
                progress(sibling.path, done, total)
    finally:
        if client is None:
            http.close()
    origin = f"sync:{base}/{repo}@{commit}"
    added = ingest.record_commit(store, repo, files, revision=local_name, origin=origin)
    return SyncResult(added, base, commit, fetched, fetched_bytes)


def _info(
    http: httpx.Client, base: str, repo: str, revision: str, headers: dict[str, str]
) -> tuple[str, list[_Sibling]]:
    url = f"{base}/api/models/{repo}/revision/{quote(revision, safe='')}"
    try:
        answer = http.get(url, params={"blobs": "true"}, headers=headers)
    except httpx.HTTPError as exc:
        raise ReservoirError(f"cannot reach the upstream hub at {base}: {exc}", status=502) from None
    if answer.status_code != 200:
        reason = _reason(answer)
        if answer.status_code == 404:
            raise ReservoirNotFound(f"{base} has no {repo}@{revision}: {reason}")
        raise ReservoirError(f"{base} refused {repo}@{revision} (HTTP {answer.status_code}): {reason}", status=502)
    try:
        info = answer.json()
        commit = str(info["sha"])
        siblings = [_sibling(s) for s in info["siblings"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReservoirError(
            f"{base} gave model info for {repo} that is not the Hub's shape: {exc}", status=502
        ) from None
    if not COMMIT.match(commit):
        raise ReservoirError(f"{base} gave {repo} an invalid commit id {commit!r}", status=502)
    if not siblings:
        raise ReservoirError(f"{base} lists no files for {repo}@{revision}")
    return commit, siblings


def _sibling(entry: dict[str, Any]) -> _Sibling:
    lfs = entry.get("lfs") or {}
    sha = lfs.get("sha256") or entry.get("sha256")
    size = entry.get("size", lfs.get("size"))
    return _Sibling(
        path=check_path(str(entry["rfilename"])),
        size=int(size) if size is not None else None,
        sha256=str(sha).lower() if sha else None,
        blob_id=None if lfs else entry.get("blobId"),
    )


def _download(
    store: Store, http: httpx.Client, base: str, repo: str, commit: str, sibling: _Sibling, headers: dict[str, str]
) -> tuple[str, int]:
    """One file at the pinned commit into the blob store, refused unless it matches what the upstream listed."""
    url = f"{base}/{repo}/resolve/{commit}/{quote(sibling.path)}"
    git = hashlib.sha1(usedforsecurity=False)
    if sibling.blob_id and sibling.size is not None:
        git.update(b"blob %d\x00" % sibling.size)

    def chunks(answer: httpx.Response) -> Any:
        for chunk in answer.iter_bytes(CHUNK):
            git.update(chunk)
            yield chunk

    try:
        with http.stream("GET", url, headers=headers) as answer:
            if answer.status_code != 200:
                answer.read()
                raise ReservoirError(
                    f"{base}: fetching {repo}/{sibling.path} gave HTTP {answer.status_code}: {_reason(answer)}",
                    status=502,
                )
            try:
                sha, size = store.blobs.put_chunks(chunks(answer), expected_sha256=sibling.sha256)
            except ReservoirError as exc:
                raise ReservoirError(f"{repo}/{sibling.path} from {base} refused: {exc.message}", status=502) from None
    except httpx.HTTPError as exc:
        raise ReservoirError(f"{base}: fetching {repo}/{sibling.path}: {exc}", status=502) from None
    if sibling.sha256 is None and sibling.blob_id and git.hexdigest() != sibling.blob_id:
        raise ReservoirError(
            f"{repo}/{sibling.path} from {base} does not match its git blob id {sibling.blob_id}", status=502
        )
    return sha, size


def _check_size(repo: str, sibling: _Sibling, size: int) -> None:
    if sibling.size is not None and size != sibling.size:
        raise ReservoirError(f"{repo}/{sibling.path}: {size} bytes where the upstream lists {sibling.size}", status=502)


def _reason(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("error") or answer.text).strip()
    except ValueError:
        return answer.text.strip()[:300]


__all__ = ["DEFAULT_UPSTREAM", "SyncResult", "default_upstream", "sync_model"]
