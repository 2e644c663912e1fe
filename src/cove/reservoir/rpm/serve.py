"""HTTP for the RPM repositories under ``/rpm/``: metadata, packages and uploads.

::

    GET  /rpm/<repo>/repodata/<file>        the published, signed metadata (repomd.xml, .asc, .key, ...)
    GET  /rpm/<repo>/Packages/<file>.rpm    a package, from the blob store (403 while quarantined)
    PUT  /rpm/<repo>/Packages/<file>.rpm    upload (basic auth, an upload token as the password); republishes

dnf's ``baseurl`` is ``<reservoir>/rpm/<repo>/``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from typing import Any
from urllib.parse import unquote

from ..errors import InvalidPackage, ReservoirError
from ..filerepo import http
from ..store import Store
from . import header, publish, records

PREFIX = "/rpm/"


def claims(path: str) -> bool:
    return path.startswith(PREFIX) or path == "/rpm"


class RpmApi:
    """The ``/rpm/`` routes for one store; ``send_file`` is the server's range-aware file sender."""

    def __init__(
        self, store: Store, reader: sqlite3.Connection, send_file: http.SendFile, max_upload_bytes: int
    ) -> None:
        self.store = store
        self.reader = reader
        self.send_file = send_file
        self.max_upload_bytes = max_upload_bytes

    async def handle(
        self, scope: http.Scope, receive: http.Receive, send: http.Send, path: str, count: http.Count, pace: Any
    ) -> None:
        method: str = scope["method"]
        repo, _, rest = unquote(path[len(PREFIX) :] if path.startswith(PREFIX) else "").partition("/")
        try:
            records.check_repo(repo)
        except ReservoirError:
            return await http.text(send, 404, f"not found: {path} (repositories are served at /rpm/<repo>/)")
        folder, _, filename = rest.partition("/")
        if folder == publish.PACKAGES and method == "PUT":
            return await self._upload(scope, receive, send, repo, filename)
        if method not in ("GET", "HEAD"):
            return await http.text(send, 405, "method not allowed", extra=[(b"allow", b"GET, HEAD, PUT")])
        if folder == publish.PACKAGES:
            record = records.get(self.reader, repo, filename) if "/" not in filename else None
            if record is None:
                return await http.text(send, 404, f"no RPM {filename!r} in {repo}")
            if record.status != "active":
                return await http.text(send, 403, f"{filename} is quarantined: {record.reason}")
            try:
                fh = self.store.blobs.path(record.sha256).open("rb")
            except FileNotFoundError:
                return await http.text(send, 404, "file content is missing from the store; run `cove reservoir audit`")
            count("rpm", f"rpm/{repo}", record.name, filename, scope, 0 if method == "HEAD" else record.size)
            etag = f'"{record.sha256}"'.encode()
            return await self.send_file(scope, send, fh, etag, b"application/x-rpm", http.FILE_CACHE, pace=pace)
        real = publish.metadata_path(self.store, repo, rest)
        if real is None:
            return await http.text(send, 404, f"not found: {path}")
        fh = open(real, "rb")  # noqa: SIM115 - closed by send_file
        st = os.fstat(fh.fileno())
        # repomd.xml and its signature change with each publish; the other files are named by their checksum.
        mutable = real.name.startswith("repomd.xml")
        etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}-{st.st_ino:x}"'.encode()
        ctype = b"text/xml" if real.name.endswith(".xml") else b"application/octet-stream"
        if real.name.endswith((".asc", ".key")):
            ctype = b"text/plain; charset=utf-8"
        if real.name == "repomd.xml":
            count("page", f"rpm/{repo}", "", "", scope, 0 if method == "HEAD" else st.st_size)
        cache = http.INDEX_CACHE if mutable else http.FILE_CACHE
        await self.send_file(scope, send, fh, etag, ctype, cache, pace=pace)

    async def _upload(
        self, scope: http.Scope, receive: http.Receive, send: http.Send, repo: str, filename: str
    ) -> None:
        who = await http.authorize(self.store, scope, send)
        if who is None:
            return
        try:
            header.split_filename(filename)
        except InvalidPackage as exc:
            return await http.text(send, 400, exc.message)
        if await http.too_large(scope, send, self.max_upload_bytes):
            return
        if records.get(self.store.conn, repo, filename) is not None:
            return await http.text(send, 409, f"{filename} already exists in {repo} (packages are immutable)")
        temp = await http.receive_body(self.store, receive, send, self.max_upload_bytes, ".rpm")
        if temp is None:
            return
        from ..policy import rpm_reason

        try:
            record, added = await asyncio.to_thread(
                records.add_package,
                self.store,
                temp,
                judge=rpm_reason,
                repo=repo,
                filename=filename,
                origin=f"upload:{who}",
            )
        except ReservoirError as exc:
            temp.unlink(missing_ok=True)  # before answering: nothing of a refused upload outlives its answer
            return await http.text(send, exc.status, exc.message)
        finally:
            temp.unlink(missing_ok=True)
        if not added:
            return await http.text(send, 409, f"{filename} already exists in {repo} (packages are immutable)")
        publish_error = None
        try:  # the package is stored either way; `cove reservoir rpm publish` finishes a failed publish
            await asyncio.to_thread(publish.publish, self.store, repo)
        except ReservoirError as exc:
            publish_error = exc.message
        await http.stored(send, filename, record.status, record.reason, {"repo": repo, "publish_error": publish_error})
