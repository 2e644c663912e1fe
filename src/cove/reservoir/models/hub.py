"""The part of the Hugging Face Hub HTTP API that ``huggingface_hub`` downloads with.

Routes, relative to wherever the reservoir is mounted (``HF_ENDPOINT`` is that URL)::

    GET  /api/models                                   repositories held
    GET  /api/models/{org}/{name}[/revision/{rev}]     model info: ``sha`` (the commit) and ``siblings``
    GET  /api/models/{org}/{name}/refs                 revision names and their commits (as branches)
    GET  /api/models/{org}/{name}/tree/{rev}[/{path}]  the file tree (``?recursive=true``), one page
    HEAD|GET /{org}/{name}/resolve/{rev}/{path}        a file
    POST /api/models/{org}/{name}/upload/{rev}         a tar of the repository's files (upload token)

``resolve`` behaves the way the Hub does for the client: a revision name
answers ``307`` to the same path at its commit id (the client follows
redirects on the same host, so what it caches is pinned to the commit); at a
commit id the file itself comes back with ``X-Repo-Commit``, an ``ETag`` that
is the git blob id, and for large (LFS) files ``X-Linked-Etag`` (the sha256)
and ``X-Linked-Size``, the headers the Hub puts on its CDN redirect. Ranges
and ``If-None-Match`` work as for any reservoir file. Errors carry
``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) so
the client raises its own exception types.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote

from .. import tokens
from ..errors import ReservoirError
from . import ingest, records
from .names import DEFAULT_REVISION, check_path, check_repo

if TYPE_CHECKING:
    import sqlite3

    from ..store import Store

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
SendFile = Callable[..., Awaitable[None]]

FILE_CACHE = b"public, max-age=31536000, immutable"
_RESOLVE = re.compile(r"^/[^/]+/[^/]+/resolve/")


def claims(path: str) -> bool:
    """Whether a request path is one of this API's (the rest of the reservoir keeps the others)."""
    return path == "/api/models" or path.startswith("/api/models/") or _RESOLVE.match(path) is not None


class HubError(Exception):
    """An answer in the Hub's error shape: status, ``X-Error-Code`` and a JSON ``{"error": ...}`` body."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class HubApi:
    """Serves model repositories from one store; reads through the server's read-only connection."""

    def __init__(self, store: Store, reader: sqlite3.Connection, send_file: SendFile, max_upload_bytes: int) -> None:
        self.store = store
        self.reader = reader
        self.send_file = send_file
        self.max_upload_bytes = max_upload_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._route(scope, receive, send, _segments(scope))
        except HubError as exc:
            await _error(send, exc.status, exc.message, exc.code)
        except ReservoirError as exc:
            await _error(send, exc.status, exc.message, None)

    async def _route(self, scope: Scope, receive: Receive, send: Send, parts: list[str]) -> None:
        method = scope["method"]
        if parts[:2] == ["api", "models"]:
            if method == "POST" and len(parts) >= 6 and parts[4] == "upload":
                return await self._upload(scope, receive, send, _repo(parts[2:4]), "/".join(parts[5:]))
            if method not in ("GET", "HEAD"):
                raise HubError(405, "method not allowed")
            if len(parts) == 2:
                return await _json(send, [{"id": repo, "modelId": repo} for repo in self._repos()], method)
            repo = _repo(parts[2:4])
            if len(parts) == 4:
                return await _json(send, self._info(repo, DEFAULT_REVISION, scope), method)
            if len(parts) == 5 and parts[4] == "refs":
                return await _json(send, self._refs(repo), method)
            if len(parts) >= 6 and parts[4] == "revision":
                return await _json(send, self._info(repo, "/".join(parts[5:]), scope), method)
            if len(parts) >= 6 and parts[4] == "tree":
                return await _json(send, self._tree(repo, parts[5], "/".join(parts[6:]), scope), method)
            raise HubError(404, f"not found: /{'/'.join(parts)}")
        if len(parts) >= 5 and parts[2] == "resolve":
            if method not in ("GET", "HEAD"):
                raise HubError(405, "method not allowed")
            return await self._resolve(scope, send, _repo(parts[:2]), parts[3], "/".join(parts[4:]))
        raise HubError(404, f"not found: /{'/'.join(parts)}")

    # -- reading ------------------------------------------------------------------------------------------------

    def _repos(self) -> list[str]:
        return sorted({repo for repo, _ref, _commit in records.refs(self.reader)})

    def _commit(self, repo: str, revision: str) -> records.Commit:
        """The commit ``revision`` names, served only when active (quarantined ones answer 403 with the reason)."""
        if not records.has_repo(self.reader, repo):
            raise HubError(404, f"Repository Not Found: {repo}", "RepoNotFound")
        commit = records.resolve(self.reader, repo, revision)
        held = records.get_commit(self.reader, repo, commit) if commit else None
        if held is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        if held.status != "active":
            raise HubError(403, f"{repo}@{held.commit} is quarantined: {held.reason}")
        return held

    def _refs(self, repo: str) -> dict[str, Any]:
        """Every revision name as a branch, the Hub's shape (``huggingface_hub.list_repo_refs`` reads it)."""
        found = records.refs(self.reader, repo)
        if not found:
            raise HubError(404, f"Repository Not Found: {repo}", "RepoNotFound")
        branches = [{"name": ref, "ref": f"refs/heads/{ref}", "targetCommit": commit} for _r, ref, commit in found]
        return {"branches": branches, "converts": [], "tags": []}

    def _info(self, repo: str, revision: str, scope: Scope) -> dict[str, Any]:
        held = self._commit(repo, revision)
        blobs = _query(scope).get("blobs", [""])[0].lower() in ("1", "true")
        siblings = []
        for f in held.files:
            entry: dict[str, Any] = {"rfilename": f.path}
            if blobs:
                entry.update(size=f.size, blobId=f.git_oid, sha256=f.sha256)  # sha256: what a node cache checks
                if f.lfs:
                    entry["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": _pointer_size(f)}
            siblings.append(entry)
        org = repo.split("/", 1)[0]
        return {
            "_id": held.commit[:24],
            "id": repo,
            "modelId": repo,
            "author": org,
            "sha": held.commit,
            "lastModified": held.created,
            "createdAt": held.created,
            "private": False,
            "disabled": False,
            "gated": False,
            "tags": [f"license:{held.license.lower()}"] if held.license else [],
            "cardData": {"license": held.license} if held.license else {},
            "siblings": siblings,
            "usedStorage": held.size,
        }

    def _tree(self, repo: str, revision: str, prefix: str, scope: Scope) -> list[dict[str, Any]]:
        held = self._commit(repo, revision)
        recursive = _query(scope).get("recursive", [""])[0].lower() in ("1", "true")
        if prefix:
            check_path(prefix)
        base = prefix + "/" if prefix else ""
        folders: dict[str, None] = {}
        files = []
        for f in held.files:
            if not f.path.startswith(base):
                continue
            rest = f.path[len(base) :].split("/")
            for depth in range(1, len(rest)):
                if recursive or depth == 1:
                    folders[base + "/".join(rest[:depth])] = None
            if recursive or len(rest) == 1:
                entry: dict[str, Any] = {"type": "file", "oid": f.git_oid, "size": f.size, "path": f.path}
                if f.lfs:
                    entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": _pointer_size(f)}
                files.append(entry)
        if prefix and not files and not folders:
            raise HubError(404, f"{prefix} does not exist in {repo}@{held.commit}", "EntryNotFound")
        dirs = [{"type": "directory", "oid": _tree_oid(held.commit, d), "size": 0, "path": d} for d in folders]
        return dirs + files

    async def _resolve(self, scope: Scope, send: Send, repo: str, revision: str, path: str) -> None:
        try:
            check_path(path)
        except ReservoirError as exc:
            raise HubError(400, exc.message) from None
        held = self._commit(repo, revision)
        if revision != held.commit:
            # Like the Hub: a name resolves to its commit, and the client caches what it got under that commit.
            # Relative, so it holds under any mount prefix: up past the revision and the folders of ``path``.
            location = ("../" * len(path.split("/")) + f"{held.commit}/{quote(path)}").encode()
            linked = self._linked(held, path)
            await _empty(send, 307, [(b"location", location), *linked])
            return
        f = held.file(path)
        if f is None:
            raise HubError(404, f"Entry not found: {path} in {repo}@{held.commit}", "EntryNotFound")
        try:
            fh = self.store.blobs.path(f.sha256).open("rb")
        except FileNotFoundError:
            raise HubError(500, "file content is missing from the store; run `cove reservoir audit`") from None
        await self.send_file(
            scope,
            send,
            fh,
            f'"{f.git_oid}"'.encode(),
            b"application/octet-stream",
            FILE_CACHE,
            self._linked(held, path),
        )

    def _linked(self, held: records.Commit, path: str) -> list[tuple[bytes, bytes]]:
        f = held.file(path)
        if f is None:
            raise HubError(404, f"Entry not found: {path} in {held.repo}@{held.commit}", "EntryNotFound")
        headers = [(b"x-repo-commit", held.commit.encode())]
        if f.lfs:
            headers += [(b"x-linked-etag", f'"{f.sha256}"'.encode()), (b"x-linked-size", str(f.size).encode())]
        return headers

    # -- upload -------------------------------------------------------------------------------------------------

    async def _upload(self, scope: Scope, receive: Receive, send: Send, repo: str, revision: str) -> None:
        headers = {k.lower(): v for k, v in scope["headers"]}
        auth = headers.get(b"authorization", b"")
        token = auth[7:].decode("latin-1").strip() if auth[:7].lower() == b"bearer " else None
        token = token or tokens.password_from_basic(auth)
        if not token:
            raise HubError(401, "authentication required: send an upload token (Authorization: Bearer TOKEN)")
        if await asyncio.to_thread(tokens.check, self.store, token) is None:
            raise HubError(403, "invalid or revoked upload token")
        declared = int(headers.get(b"content-length", b"0") or 0)
        if declared > self.max_upload_bytes:
            raise HubError(413, f"upload is larger than the limit of {self.max_upload_bytes} bytes")
        from ..store import new_temp_path

        tmp = new_temp_path(self.store, ".tar")
        try:
            await _receive_to(receive, tmp, self.max_upload_bytes)
            result = await asyncio.to_thread(
                ingest.add_tar,
                self.store,
                repo,
                tmp,
                revision=revision,
                origin="upload",
                max_bytes=self.max_upload_bytes,
            )
        finally:
            tmp.unlink(missing_ok=True)
        await _json(send, result.to_json(), "POST", status=201 if result.added else 200)


def _segments(scope: Scope) -> list[str]:
    """Path segments, each percent-decoded on its own (a revision may hold an encoded ``/``)."""
    raw = scope.get("raw_path")
    text = raw.decode("latin-1") if raw else quote(scope["path"])
    root = scope.get("root_path") or ""
    if root and text.startswith(root):
        text = text[len(root) :]
    return [unquote(p) for p in text.split("?", 1)[0].strip("/").split("/")]


def _repo(parts: list[str]) -> str:
    try:
        return check_repo("/".join(parts))
    except ReservoirError as exc:
        raise HubError(404, exc.message, "RepoNotFound") from None


def _query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs((scope.get("query_string") or b"").decode("latin-1"))


def _pointer_size(f: records.ModelFile) -> int:
    return len(records.lfs_pointer(f.sha256, f.size))


def _tree_oid(commit: str, folder: str) -> str:
    return hashlib.sha1(f"{commit}:{folder}".encode(), usedforsecurity=False).hexdigest()


async def _receive_to(receive: Receive, path: Path, limit: int) -> None:
    size = 0
    with path.open("wb") as out:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HubError(400, "client went away during the upload")
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                raise HubError(413, f"upload is larger than the limit of {limit} bytes")
            out.write(body)
            if not message.get("more_body"):
                return


async def _json(send: Send, doc: Any, method: str, *, status: int = 200) -> None:
    body = json.dumps(doc).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def _empty(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def _error(send: Send, status: int, message: str, code: str | None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if code:
        headers.append((b"x-error-code", code.encode()))
    printable = "".join(c if " " <= c <= "~" else "?" for c in message)[:500]
    headers.append((b"x-error-message", printable.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
