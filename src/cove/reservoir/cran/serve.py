"""HTTP for the CRAN-like repository under ``/cran/``: the index, the packages, and uploads.

::

    GET  /cran/src/contrib/PACKAGES             the index (also PACKAGES.gz)
    GET  /cran/src/contrib/<pkg>_<ver>.tar.gz   a package (any version held)
    GET  /cran/src/contrib/Archive/<pkg>/<file> the same file where R looks for older versions
    PUT  /cran/src/contrib/<pkg>_<ver>.tar.gz   upload (basic auth, an upload token as the password)

The index is rendered from the database when the store changed (the server
tells this module its current ``data_version``) and kept in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from typing import Any
from urllib.parse import unquote

from ..errors import InvalidPackage, ReservoirError
from ..filerepo import http
from ..filerepo.http import Count, Receive, Scope, Send, SendFile
from ..store import Store
from . import description, index, records

PREFIX = "/cran/"
_CONTRIB = "src/contrib/"
_INDEX_CACHE = http.INDEX_CACHE
_FILE_CACHE = http.FILE_CACHE


def claims(path: str) -> bool:
    return path.startswith(PREFIX) or path == "/cran"


class CranApi:
    """The ``/cran/`` routes for one store; ``send_file`` is the server's range-aware file sender."""

    def __init__(self, store: Store, reader: sqlite3.Connection, send_file: SendFile, max_upload_bytes: int) -> None:
        self.store = store
        self.reader = reader
        self.send_file = send_file
        self.max_upload_bytes = max_upload_bytes
        self._index: tuple[int, bytes, bytes, bytes] | None = None  # (data version, text, gz, etag base)

    def _packages(self, version: int) -> tuple[bytes, bytes, bytes]:
        if self._index is None or self._index[0] != version:
            text = index.render(self.reader)
            self._index = (version, text, index.render_gz(text), hashlib.sha256(text).hexdigest()[:32].encode())
        return self._index[1], self._index[2], self._index[3]

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, path: str, version: int, count: Count, pace: Any
    ) -> None:
        method: str = scope["method"]
        rest = path[len(PREFIX) :] if path.startswith(PREFIX) else ""
        if not rest.startswith(_CONTRIB):
            return await _text(send, 404, f"not found: {path} (this repository serves /cran/src/contrib/)")
        name = unquote(rest[len(_CONTRIB) :])
        if method == "PUT":
            return await self._upload(scope, receive, send, name)
        if method not in ("GET", "HEAD"):
            return await _text(send, 405, "method not allowed", extra=[(b"allow", b"GET, HEAD, PUT")])
        if name in ("PACKAGES", "PACKAGES.gz", ""):
            text, gz, etag = self._packages(version)
            body, ctype, tag = (
                (gz, b"application/x-gzip", etag + b"-gz")
                if name.endswith(".gz")
                else (text, b"text/plain; charset=utf-8", etag)
            )
            quoted = b'"' + tag + b'"'
            if any(k == b"if-none-match" and quoted in v for k, v in scope["headers"]):
                return await _send(send, 304, [(b"etag", quoted), (b"cache-control", _INDEX_CACHE)], b"")
            count("page", "cran", "", "", scope, 0 if method == "HEAD" else len(body))
            headers = [(b"content-type", ctype), (b"etag", quoted), (b"cache-control", _INDEX_CACHE)]
            return await _send(send, 200, headers, body, head=method == "HEAD")
        if name.startswith("Archive/"):
            package, _, name = name[len("Archive/") :].partition("/")
            try:
                if description.split_filename(name)[0] != package:
                    raise InvalidPackage("another package's folder")
            except InvalidPackage:
                return await _text(send, 404, f"not found: {path}")
        record = records.get(self.reader, name) if "/" not in name else None
        if record is None:
            return await _text(send, 404, f"no R package {name!r}")
        if record.status != "active":
            return await _text(send, 403, f"{name} is quarantined: {record.reason}")
        try:
            fh = self.store.blobs.path(record.sha256).open("rb")
        except FileNotFoundError:
            return await _text(send, 404, "file content is missing from the store; run `cove reservoir audit`")
        count("cran", "cran", record.package, name, scope, 0 if method == "HEAD" else record.size)
        etag = f'"{record.sha256}"'.encode()
        await self.send_file(scope, send, fh, etag, b"application/x-gzip", _FILE_CACHE, pace=pace)

    async def _upload(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        who = await http.authorize(self.store, scope, send)
        if who is None:
            return
        try:
            description.split_filename(name)
        except InvalidPackage as exc:
            return await _text(send, 400, exc.message)
        if await http.too_large(scope, send, self.max_upload_bytes):
            return
        if records.get(self.store.conn, name) is not None:
            return await _text(send, 409, f"{name} already exists (packages are immutable and never overwritten)")
        temp = await http.receive_body(self.store, receive, send, self.max_upload_bytes, ".upload")
        if temp is None:
            return
        from ..policy import cran_reason

        try:
            record, added = await asyncio.to_thread(
                records.add_package, self.store, temp, judge=cran_reason, filename=name, origin=f"upload:{who}"
            )
        except ReservoirError as exc:
            temp.unlink(missing_ok=True)  # before answering: nothing of a refused upload outlives its answer
            return await _text(send, exc.status, exc.message)
        finally:
            temp.unlink(missing_ok=True)
        if not added:
            return await _text(send, 409, f"{name} already exists (packages are immutable and never overwritten)")
        await http.stored(send, name, record.status, record.reason)


_send = http.send
_text = http.text
