"""The legacy upload API that ``twine upload`` speaks.

The multipart body is streamed to a temp file next to the blob store while its
hashes are computed, then validated as a whole; only a fully valid file is
moved into the store, so a failed upload leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version
from python_multipart.multipart import MultipartParser, parse_options_header

from . import indexes, tokens
from .errors import InvalidPackage, ReservoirError
from .indexes import DEFAULT_HOSTED
from .names import normalize, parse_filename
from .store import Store, new_temp_path

MAX_FIELD_BYTES = 1024 * 1024

Receive = Callable[[], Awaitable[dict[str, Any]]]
UpstreamCheck = Callable[[str], Awaitable[bool]]


@dataclasses.dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    value: bytearray = dataclasses.field(default_factory=bytearray)
    path: Path | None = None
    fh: Any = None
    size: int = 0


class _FormReader:
    """Collects fields in memory and the file part on disk, hashing it on the way."""

    def __init__(self, store: Store, max_file_bytes: int) -> None:
        self.store = store
        self.max_file_bytes = max_file_bytes
        self.fields: dict[str, str] = {}
        self.file: _Part | None = None
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self._part: _Part | None = None
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._on_part_begin,
            "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
        }

    def _on_part_begin(self) -> None:
        self._part = _Part()
        self._headers = {}

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        assert self._part is not None
        _disp, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._part.name = params.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = params.get(b"filename")
        if raw_filename is not None:
            if self.file is not None:
                raise ReservoirError("the upload has more than one file; send one file per request")
            self._part.filename = raw_filename.decode("utf-8", "replace")
            self._part.path = new_temp_path(self.store, ".upload")
            self._part.fh = self._part.path.open("wb")
            self.file = self._part

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        assert part is not None
        chunk = data[start:end]
        part.size += len(chunk)
        if part.fh is not None:
            if part.size > self.max_file_bytes:
                raise ReservoirError(f"file is larger than the upload limit of {self.max_file_bytes} bytes", status=413)
            self.sha256.update(chunk)
            self.md5.update(chunk)
            part.fh.write(chunk)
        else:
            if part.size > MAX_FIELD_BYTES:
                raise ReservoirError(f"form field {part.name!r} is too large")
            part.value.extend(chunk)

    def _on_part_end(self) -> None:
        part = self._part
        assert part is not None
        if part.fh is not None:
            part.fh.close()
            part.fh = None
        else:
            self.fields[part.name] = part.value.decode("utf-8", "replace")
        self._part = None

    def discard(self) -> None:
        if self.file is not None and self.file.path is not None:
            if self.file.fh is not None:
                self.file.fh.close()
            if self.file.path.exists():
                os.unlink(self.file.path)


async def handle_upload(
    store: Store,
    headers: dict[bytes, bytes],
    receive: Receive,
    max_file_bytes: int,
    *,
    index: str = DEFAULT_HOSTED,
    upstream_has: UpstreamCheck | None = None,
) -> tuple[int, str]:
    """Run one upload into hosted ``index``; return ``(status, message)``. Never leaves a partial file.

    ``upstream_has`` (proxy mode) asks the upstream index whether it knows a
    name: a new name the upstream already publishes is refused unless claimed.
    """
    token = tokens.password_from_basic(headers.get(b"authorization"))
    if token is None:
        return 401, "authentication required: send an upload token as the password (user __token__)"
    who = await asyncio.to_thread(tokens.check, store, token)
    if who is None:
        return 403, "invalid or revoked upload token"
    ctype, params = parse_options_header(headers.get(b"content-type", b""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        return 400, "uploads must be multipart/form-data (the legacy upload API, as twine sends it)"
    length = headers.get(b"content-length")
    if length is not None and length.isdigit() and int(length) > max_file_bytes + MAX_FIELD_BYTES * 4:
        return 413, f"upload is larger than the limit of {max_file_bytes} bytes"
    form = _FormReader(store, max_file_bytes)
    try:
        parser = MultipartParser(boundary, form.callbacks())  # type: ignore[arg-type]
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ReservoirError("client disconnected during upload")
            body = message.get("body", b"")
            if body:
                parser.write(body)
            more = bool(message.get("more_body"))
        parser.finalize()
        return await _finish(store, form, who, index, upstream_has)
    except ReservoirError as exc:
        return exc.status, exc.message
    except Exception as exc:  # the multipart parser raises its own error types for malformed bodies
        if type(exc).__module__.startswith("python_multipart"):
            return 400, f"malformed multipart body: {exc}"
        raise
    finally:
        form.discard()


async def _finish(
    store: Store, form: _FormReader, who: str, index: str, upstream_has: UpstreamCheck | None
) -> tuple[int, str]:
    action = form.fields.get(":action", "file_upload")
    if action != "file_upload":
        return 400, f"unsupported :action {action!r}; only file_upload is supported"
    part = form.file
    if part is None or part.path is None or not part.filename:
        return 400, "no file in the upload (expected a file in the 'content' field)"
    filename = os.path.basename(part.filename.replace("\\", "/"))
    if filename != part.filename:
        return 400, f"invalid filename {part.filename!r}: paths are not allowed"
    dist = parse_filename(filename)
    name = form.fields.get("name")
    if name and normalize(name) != dist.project:
        return 400, f"form field name={name!r} does not match the file {filename!r}"
    version = form.fields.get("version")
    if version:
        try:
            if Version(version) != Version(dist.version):
                return 400, f"form field version={version!r} does not match the file {filename!r}"
        except InvalidVersion:
            return 400, f"invalid version {version!r}"
    sha = form.sha256.hexdigest()
    claimed = form.fields.get("sha256_digest")
    if claimed and claimed.lower() != sha:
        return 400, f"sha256_digest does not match the uploaded file ({sha})"
    claimed_md5 = form.fields.get("md5_digest")
    if claimed_md5 and claimed_md5.lower() != form.md5.hexdigest():
        return 400, "md5_digest does not match the uploaded file"
    if store.get_file(filename) is not None:
        return 409, f"File already exists: {filename} (files are immutable and never overwritten)"
    if (
        upstream_has is not None
        and indexes.claim_of(store.conn, dist.project) is None
        and not indexes.holders(store.conn, dist.project)
        and await upstream_has(dist.project)
    ):
        return 409, (
            f"{dist.project!r} exists on the upstream index and no index here claims it; uploading it to {index!r} "
            f"would mix two sources of one name (dependency confusion). If the name is yours, claim it first: "
            f"cove reservoir claim {dist.project} --index {index}"
        )
    try:
        _record, added = await asyncio.to_thread(
            store.add_file,
            part.path,
            filename,
            origin=f"upload:{who}",
            move=True,
            display=name or None,
            index=index,
        )
    except InvalidPackage as exc:
        return 400, exc.message
    if not added:
        return 409, f"File already exists: {filename} (files are immutable and never overwritten)"
    return 200, f"OK: {filename} stored"
