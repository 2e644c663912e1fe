"""The reservoir's HTTP server: a small ASGI app with no framework underneath.

Index pages are rendered when the store changes and kept in SQLite; the server
keeps them in memory and answers with those bytes, checking one SQLite counter
(``PRAGMA data_version``) per request to notice commits from other processes
(a sync or an import running beside the server). That keeps the hot path to a
dictionary lookup and two ``send`` calls.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from . import indexes, negotiate
from .blobs import check_sha256
from .cran import serve as cran
from .db import connect
from .errors import ReservoirError
from .models import hub
from .names import normalize
from .rpm import serve as rpm
from .stats import COMBINED
from .store import ROOT_PAGE, Store
from .traffic import Traffic, TrafficConfig
from .upload import handle_upload

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

INDEX_CACHE = b"max-age=0, must-revalidate"
FILE_CACHE = b"public, max-age=31536000, immutable"
READ_CHUNK = 256 * 1024
PACED_CHUNK = 64 * 1024  # smaller steps when a bytes/s limit spaces them out
DEFAULT_MAX_UPLOAD = 2 * 1024 * 1024 * 1024

_TYPES = {
    negotiate.JSON: b"application/vnd.pypi.simple.v1+json",
    negotiate.HTML_V1: b"application/vnd.pypi.simple.v1+html",
    negotiate.HTML: b"text/html; charset=utf-8",
}
_VARIANT = {negotiate.JSON: "j", negotiate.HTML_V1: "v", negotiate.HTML: "h"}
_DEB_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~:-]*$")
_FILE_ROW = (
    "SELECT status, reason, metadata_sha256, project, index_name, size, metadata_size FROM files "
    "WHERE sha256=? AND filename=?"
)
_UPLOAD_PATHS = frozenset({"/", "/legacy/", "/upload/", "/legacy", "/upload"})


@dataclasses.dataclass(frozen=True)
class _Page:
    """A page's bytes with one pre-built header list per variant."""

    bodies: dict[str, bytes]
    headers: dict[str, list[tuple[bytes, bytes]]]
    etags: dict[str, bytes]


def _make_page(html: bytes, json_body: bytes) -> _Page:
    bodies, headers, etags = {}, {}, {}
    for media, ctype in _TYPES.items():
        body = json_body if media == negotiate.JSON else html
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}-{_VARIANT[media]}"'.encode()
        bodies[media] = body
        etags[media] = etag
        headers[media] = [
            (b"content-type", ctype),
            (b"content-length", str(len(body)).encode()),
            (b"etag", etag),
            (b"vary", b"Accept"),
            (b"cache-control", INDEX_CACHE),
        ]
    return _Page(bodies, headers, etags)


class ReservoirApp:
    """ASGI app serving ``/simple/``, ``/files/`` and uploads for one reservoir root."""

    def __init__(
        self,
        root: Path,
        *,
        store: Store | None = None,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
        proxy: Any = None,
        traffic: TrafficConfig | None = None,
    ) -> None:
        self.store = store or Store(root)
        self._reader: sqlite3.Connection = connect(self.store.layout.database, readonly=True)
        self.traffic = Traffic(self.store, self._reader, traffic)
        self._version = -1
        self._pages: dict[str, _Page | None] = {}
        self._kinds: dict[str, str] | None = None
        self.max_upload_bytes = max_upload_bytes
        self.proxy = proxy
        self._hub_api: hub.HubApi | None = None
        self._cran_api: cran.CranApi | None = None
        self._rpm_api: rpm.RpmApi | None = None

    def _hub(self) -> hub.HubApi:
        if self._hub_api is None:
            self._hub_api = hub.HubApi(self.store, self._reader, _send_file, self.max_upload_bytes)
        return self._hub_api

    # -- cache --------------------------------------------------------------------------------------------

    def _fresh(self) -> None:
        version = self._reader.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._version = version
            self._pages.clear()
            self._kinds = None
            self.traffic.forget_tokens()

    def invalidate(self) -> None:
        self._pages.clear()
        self._kinds = None

    def _index_kind(self, name: str) -> str | None:
        """The kind of index ``name`` (``hosted``/``mirror``), None when this site has no such index."""
        if self._kinds is None:
            self._kinds = {i.name: i.kind for i in indexes.all_indexes(self._reader)}
        return self._kinds.get(name)

    def _page(self, key: str) -> _Page | None:
        try:
            return self._pages[key]
        except KeyError:
            pass
        row = self._reader.execute("SELECT html, json FROM pages WHERE key=?", (key,)).fetchone()
        page = _make_page(bytes(row[0]), bytes(row[1])) if row else None
        self._pages[key] = page
        return page

    # -- ASGI ---------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.traffic.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        root_path: str = scope.get("root_path") or ""
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :] or "/"
        method: str = scope["method"]
        wait = self.traffic.retry_after(scope)
        if wait is not None:
            return await self.traffic.too_many(scope, send, wait)
        if hub.claims(path):  # the Hugging Face Hub API for model repositories
            return await self._hub().handle(scope, receive, send)
        try:
            if path.startswith("/simple/"):
                if method not in ("GET", "HEAD"):
                    return await _text(send, 405, "method not allowed", extra=[(b"allow", b"GET, HEAD")])
                return await self._simple(scope, path[8:], send, "")
            if path.startswith("/files/"):
                if method not in ("GET", "HEAD"):
                    return await _text(send, 405, "method not allowed", extra=[(b"allow", b"GET, HEAD")])
                return await self._file(scope, path[7:], send)
            if path == "/simple":
                return await _redirect(send, "simple/")
            if cran.claims(path) or rpm.claims(path):  # the CRAN-like and the yum/dnf repositories
                return await self._file_repository(scope, receive, send, path)
            if path.startswith("/debian/"):
                if method not in ("GET", "HEAD"):
                    return await _text(send, 405, "method not allowed", extra=[(b"allow", b"GET, HEAD")])
                return await self._debian(scope, path[8:], send)
            if method == "POST" and path in _UPLOAD_PATHS:
                return await self._upload(scope, receive, send, indexes.DEFAULT_HOSTED)
            index, _slash, rest = path[1:].partition("/")
            if index and _slash:
                self._fresh()
                if self._index_kind(index) is not None:
                    return await self._index_route(scope, receive, send, index, rest)
            if path in ("/stats", "/metrics") and method == "GET":
                await self.traffic.serve(path, scope, send)
            elif path in ("/", "/health") and method in ("GET", "HEAD"):
                body = json.dumps({"status": "ok", "serial": self.store.serial(), "site": self.store.site_id})
                await _send(send, 200, [(b"content-type", b"application/json")], body.encode(), head=method == "HEAD")
            else:
                await _text(send, 404, f"not found: {path}")
        except ReservoirError as exc:
            return await _text(send, exc.status, exc.message)

    async def _index_route(self, scope: Scope, receive: Receive, send: Send, index: str, rest: str) -> None:
        """``/<index>/simple/...`` and uploads to ``/<index>/``."""
        method: str = scope["method"]
        if rest.startswith("simple/"):
            if method not in ("GET", "HEAD"):
                return await _text(send, 405, "method not allowed", extra=[(b"allow", b"GET, HEAD")])
            return await self._simple(scope, rest[7:], send, index + "/")
        if rest == "simple":
            return await _redirect(send, "simple/")
        if method == "POST" and "/" + rest in _UPLOAD_PATHS:
            return await self._upload(scope, receive, send, index)
        return await _text(send, 404, f"not found: /{index}/{rest}")

    async def _upload(self, scope: Scope, receive: Receive, send: Send, index: str) -> None:
        if self._index_kind(index) != "hosted":
            return await _text(
                send, 403, f"index {index!r} is a mirror (filled by sync and the proxy); upload to a hosted index"
            )
        upstream = self.proxy.upstream_has if self.proxy is not None else None
        status, message = await handle_upload(
            self.store, _headers(scope), receive, self.max_upload_bytes, index=index, upstream_has=upstream
        )
        if status == 200:
            self.invalidate()
        extra = [(b"www-authenticate", b'Basic realm="cove-reservoir"')] if status == 401 else None
        return await _text(send, status, message, extra=extra)

    async def _simple(self, scope: Scope, rest: str, send: Send, prefix: str) -> None:
        """A page of the combined view (``prefix`` empty) or of one index (``prefix`` is ``<index>/``)."""
        self._fresh()
        if rest == "":
            key = prefix or ROOT_PAGE
        else:
            name, slash, tail = rest.partition("/")
            name = unquote(name)
            if tail:
                return await _text(send, 404, f"not found: /simple/{rest}")
            normal = normalize(name)
            if not slash or normal != name:
                # Relative so the redirect stays right under any mount prefix.
                target = f"{normal}/" if not slash else f"../{normal}/"
                return await _redirect(send, target)
            key = prefix + name
        headers = scope["headers"]
        accept = None
        if_none_match = None
        for hname, hvalue in headers:
            if hname == b"accept":
                accept = hvalue
            elif hname == b"if-none-match":
                if_none_match = hvalue
        media = negotiate.choose(accept)
        if media is None:
            return await _text(
                send,
                406,
                "not acceptable: this index serves application/vnd.pypi.simple.v1+json, "
                "application/vnd.pypi.simple.v1+html and text/html",
                extra=[(b"vary", b"Accept")],
            )
        page = self._page(key)
        project = key[len(prefix) :]
        proxied = self.proxy is not None and project and prefix in ("", self.proxy.index + "/")
        if proxied and self.proxy is not None:
            # A miss fetches upstream's listing; a hit on a proxied listing older than the TTL refreshes it.
            changed = await (self.proxy.fetch_project(project) if page is None else self.proxy.refresh(project))
            if changed:
                self._fresh()
                self.invalidate()
                page = self._page(key)
        if page is None:
            if not prefix and project and indexes.is_contested(self._reader, project):
                held = ", ".join(sorted(indexes.holders(self._reader, project)))
                return await _text(
                    send,
                    404,
                    f"{project!r} is held by several indexes ({held}) and none claims it; the combined index "
                    f"does not mix sources of one name. Use /<index>/simple/ or claim it: "
                    f"cove reservoir claim {project} --index INDEX",
                    extra=[(b"vary", b"Accept")],
                )
            where = f" on index {prefix[:-1]!r}" if prefix else ""
            return await _text(send, 404, f"unknown project {project!r}{where}", extra=[(b"vary", b"Accept")])
        not_modified = if_none_match is not None and _etag_matches(if_none_match, page.etags[media])
        sent = 0 if not_modified or scope["method"] == "HEAD" else len(page.bodies[media])
        self.traffic.count("page", prefix[:-1] or COMBINED, project, "", scope, sent)
        if not_modified:
            await send(
                {
                    "type": "http.response.start",
                    "status": 304,
                    "headers": [(b"etag", page.etags[media]), (b"vary", b"Accept"), (b"cache-control", INDEX_CACHE)],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": page.headers[media]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else page.bodies[media]})

    async def _file(self, scope: Scope, rest: str, send: Send) -> None:
        sha, slash, name = rest.partition("/")
        name = unquote(name)
        if not slash or not name or "/" in name:
            return await _text(send, 404, f"not found: /files/{rest}")
        try:
            check_sha256(sha)
        except ReservoirError:
            return await _text(send, 404, f"not found: /files/{rest}")
        want_metadata = name.endswith(".metadata")
        filename = name[: -len(".metadata")] if want_metadata else name
        row = self._reader.execute(_FILE_ROW, (sha, filename)).fetchone()
        if row is None and self.proxy is not None and await self.proxy.fetch_file(filename, sha):
            row = self._reader.execute(_FILE_ROW, (sha, filename)).fetchone()
        if row is None:
            return await _text(send, 404, f"no such file {filename!r}")
        if row[0] != "active":
            return await _text(send, 403, f"{filename} is quarantined: {row[1]}")
        if want_metadata:
            if not row[2]:
                return await _text(send, 404, f"no metadata file for {filename!r}")
            blob, ctype = row[2], b"text/plain; charset=utf-8"
        else:
            blob, ctype = sha, b"application/octet-stream"
        kind, size = ("metadata", row[6]) if want_metadata else ("file", row[5])
        self.traffic.count(kind, row[4], row[3], filename, scope, 0 if scope["method"] == "HEAD" else size or 0)
        await self._send_blob(scope, send, blob, ctype)

    async def _file_repository(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """R packages under ``/cran/`` (index rendered from the database), RPMs under ``/rpm/`` (published)."""
        pace = self.traffic.pacer(scope)
        if rpm.claims(path):
            if self._rpm_api is None:
                self._rpm_api = rpm.RpmApi(self.store, self._reader, _send_file, self.max_upload_bytes)
            return await self._rpm_api.handle(scope, receive, send, path, self.traffic.count, pace)
        self._fresh()
        if self._cran_api is None:
            self._cran_api = cran.CranApi(self.store, self._reader, _send_file, self.max_upload_bytes)
        await self._cran_api.handle(scope, receive, send, path, self._version, self.traffic.count, pace)

    async def _send_blob(self, scope: Scope, send: Send, sha: str, ctype: bytes) -> None:
        path = self.store.blobs.path(sha)
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            return await _text(send, 404, "file content is missing from the store; run `cove reservoir audit`")
        await _send_file(scope, send, fh, f'"{sha}"'.encode(), ctype, FILE_CACHE, pace=self.traffic.pacer(scope))

    async def _debian(self, scope: Scope, rest: str, send: Send) -> None:
        """The published apt repository: files under ``<root>/debian/``, nothing outside it, no hidden names."""
        base = self.store.layout.debian
        parts = unquote(rest).split("/")
        if not rest or not all(_DEB_SEGMENT.match(p) for p in parts):
            return await _text(send, 404, f"not found: /debian/{rest}")
        path = base.joinpath(*parts)
        real = os.path.realpath(path)
        if not real.startswith(os.path.realpath(base) + os.sep) or not os.path.isfile(real):
            return await _text(send, 404, f"not found: /debian/{rest}")
        fh = open(real, "rb")  # noqa: SIM115 - closed by _send_file
        st = os.fstat(fh.fileno())
        if parts[0] == "pool":  # pool files never change under one name
            etag, cache = f'"{st.st_size:x}-{st.st_ino:x}"'.encode(), FILE_CACHE
        else:
            etag, cache = f'"{st.st_mtime_ns:x}-{st.st_size:x}-{st.st_ino:x}"'.encode(), INDEX_CACHE
        ctype = b"application/vnd.debian.binary-package" if real.endswith(".deb") else b"application/octet-stream"
        if parts[-1] in ("Release", "InRelease", "Packages") or real.endswith((".gpg", ".asc")):
            ctype = b"text/plain; charset=utf-8"
        if parts[0] == "pool" and real.endswith(".deb"):
            self.traffic.count("deb", "debian", parts[-1].split("_", 1)[0], parts[-1], scope, st.st_size)
        await _send_file(scope, send, fh, etag, ctype, cache, pace=self.traffic.pacer(scope))


async def _send_file(
    scope: Scope,
    send: Send,
    fh: Any,
    etag: bytes,
    ctype: bytes,
    cache: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    pace: Callable[[int], Awaitable[None]] | None = None,
) -> None:
    """Send an open file with ETag, conditional and single-range support (``extra`` headers on every answer);
    closes ``fh``. ``pace`` delays each chunk (a bytes/s limit, see :mod:`.traffic`)."""
    with fh:
        size = os.fstat(fh.fileno()).st_size
        range_header = if_none_match = if_range = None
        for hname, hvalue in scope["headers"]:
            if hname == b"range":
                range_header = hvalue
            elif hname == b"if-none-match":
                if_none_match = hvalue
            elif hname == b"if-range":
                if_range = hvalue
        base = [(b"etag", etag), (b"cache-control", cache), (b"accept-ranges", b"bytes"), *(extra or ())]
        if if_none_match is not None and _etag_matches(if_none_match, etag):
            await send({"type": "http.response.start", "status": 304, "headers": base})
            await send({"type": "http.response.body", "body": b""})
            return
        start, end, status = 0, size - 1, 200
        if range_header is not None and (if_range is None or if_range.strip() == etag):
            try:
                parsed = _parse_range(range_header, size)
            except _Unsatisfiable:
                await _send(send, 416, [(b"content-range", f"bytes */{size}".encode()), *base], b"")
                return
            if parsed is not None:
                start, end = parsed
                status = 206
        length = end - start + 1 if size else 0
        headers = [*base, (b"content-type", ctype), (b"content-length", str(length).encode())]
        if status == 206:
            headers.append((b"content-range", f"bytes {start}-{end}/{size}".encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if scope["method"] == "HEAD" or length == 0:
            await send({"type": "http.response.body", "body": b""})
            return
        fh.seek(start)
        remaining = length
        while remaining > 0:
            # Blobs are local files, mostly in the page cache: short reads beat a thread hop.
            chunk = fh.read(min(READ_CHUNK if pace is None else PACED_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            if pace is not None:
                await pace(len(chunk))
            await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope["headers"]}


def _etag_matches(header: bytes, etag: bytes) -> bool:
    if header.strip() == b"*":
        return True
    for candidate in header.split(b","):
        candidate = candidate.strip()
        if candidate.startswith(b"W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


class _Unsatisfiable(Exception):
    """A range that lies outside the file (416)."""


def _parse_range(header: bytes, size: int) -> tuple[int, int] | None:
    """One byte range, clipped to the file; None to ignore the header (multiple or odd ranges)."""
    text = header.decode("latin-1").strip()
    if not text.startswith("bytes="):
        return None
    spec = text[6:].strip()
    if "," in spec:
        return None
    first, dash, last = spec.partition("-")
    if not dash:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0 or not size:
                raise _Unsatisfiable
            return max(size - suffix, 0), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        raise _Unsatisfiable
    return start, min(end, size - 1)


async def _send(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, head: bool = False
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _text(send: Send, status: int, message: str, *, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")] + (extra or [])
    await _send(send, status, headers, (message + "\n").encode())


async def _redirect(send: Send, location: str) -> None:
    await _send(
        send,
        301,
        [(b"location", location.encode()), (b"content-type", b"text/plain; charset=utf-8")],
        f"moved to {location}\n".encode(),
    )


def create_app(
    root: Path,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    proxy: Any = None,
    store: Store | None = None,
    traffic: TrafficConfig | None = None,
) -> ReservoirApp:
    """The ASGI app for the reservoir at ``root``; mountable under any prefix (e.g. ``/reservoir/``)."""
    return ReservoirApp(Path(root), max_upload_bytes=max_upload_bytes, proxy=proxy, store=store, traffic=traffic)
