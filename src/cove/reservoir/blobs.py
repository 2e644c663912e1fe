"""Content-addressed file storage.

A blob's name is its sha256, so identical files are stored once, a blob can be
checked at any time, and bundles can name blobs without trusting any path. A
blob appears under its final name only after it was fully written, hashed and
synced, so a crash never leaves a half-written blob where readers look.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from .errors import ReservoirError

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


def check_sha256(value: str) -> str:
    """Return ``value`` if it is a lowercase hex sha256; anything else could be a path trick."""
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ReservoirError(f"invalid sha256 {value!r}")
    return value


class BlobStore:
    """Blobs under ``root/ab/cd/<sha256>``, written through ``tmp`` on the same filesystem."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        return self.path(sha256).stat().st_size

    def put_chunks(
        self, chunks: Iterable[bytes], *, expected_sha256: str | None = None, max_size: int | None = None
    ) -> tuple[str, int]:
        """Store the concatenation of ``chunks``; return ``(sha256, size)``.

        With ``expected_sha256`` a mismatch raises and nothing is stored, which
        is how fetched and imported files are verified before anyone sees them.
        """
        self.tmp.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise ReservoirError(f"file is larger than the limit of {max_size} bytes", status=413)
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            if expected_sha256 is not None and sha != expected_sha256:
                raise ReservoirError(f"sha256 mismatch: expected {expected_sha256}, got {sha}")
            self._install(tmp_name, sha)
            return sha, size
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.put_chunks([data])

    def put_file(self, source: BinaryIO, **kwargs: object) -> tuple[str, int]:
        return self.put_chunks(iter(lambda: source.read(CHUNK), b""), **kwargs)  # type: ignore[arg-type]

    def _install(self, tmp_name: str, sha: str) -> None:
        final = self.path(sha)
        if final.is_file():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, final)

    def verify(self, sha256: str) -> bool:
        """Re-hash a stored blob; False when missing or corrupted."""
        path = self.path(sha256)
        if not path.is_file():
            return False
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                digest.update(chunk)
        return digest.hexdigest() == sha256
