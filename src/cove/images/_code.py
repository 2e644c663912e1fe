"""Checking and unpacking uploaded code archives (gzip tar, as ``cove.sdk._packing`` makes them).

An archive comes from outside, so nothing in it is trusted: member names could
escape the destination, links could point anywhere on the host, devices could
expose hardware, and a few kilobytes of gzip can expand to terabytes. Every
byte is counted as it is decompressed instead of believing the size fields
in the headers, and the unpacked tree is read-only because code is
content-addressed: the same hash must always mean the same files.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import secrets
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from cove._host.rmtree import remove_tree
from cove._host.safepath import NAME_MAX
from cove._wire.units import human_size

from ._errors import ArchiveError

MAX_UNPACKED = 1024**3
MAX_MEMBERS = 100_000
# A member's path, in bytes. Well under PATH_MAX (4096): the archive unpacks below a folder on the worker
# and a mount point in the container, whose paths add to it.
MAX_MEMBER_PATH = 1024
_CHUNK = 1024 * 1024
# Tar headers, pax records and padding that the stream may add around each member's contents.
_OVERHEAD_PER_MEMBER = 2048
_GZIP_MAGIC = b"\x1f\x8b"

FileSink = Callable[[str, bool, Iterator[bytes]], None]
DirSink = Callable[[str], None]


class _TooLarge(Exception):
    """Raised from inside the decompressing stream; kept apart from anything tarfile might catch."""


class _BoundedStream(io.RawIOBase):
    """Decompressed bytes, refusing to produce more than ``limit`` of them."""

    def __init__(self, source: gzip.GzipFile, limit: int) -> None:
        self._source = source
        self._limit = limit
        self.produced = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = self._limit + 1 - self.produced if size is None or size < 0 else min(size, self._limit + 1)
        chunk = self._source.read(want)
        self.produced += len(chunk)
        if self.produced > self._limit:
            raise _TooLarge
        return chunk


def validate_archive(data: bytes, *, max_unpacked: int = MAX_UNPACKED, max_members: int = MAX_MEMBERS) -> None:
    """Raise ``ArchiveError`` saying what is wrong unless ``data`` is a safe code archive."""
    _scan(data, max_unpacked, max_members, on_dir=lambda _name: None, on_file=_discard)


def extract_code(data: bytes, dest: Path, *, max_unpacked: int = MAX_UNPACKED, max_members: int = MAX_MEMBERS) -> Path:
    """Unpack a code archive at ``dest``, read-only; return ``dest``.

    An existing ``dest`` is returned untouched: its name is the content hash,
    so it already holds these files. Unpacking happens in a temporary sibling
    that is renamed into place, so ``dest`` never holds a partial tree.
    """
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        _scan(data, max_unpacked, max_members, on_dir=lambda name: _make_dir(tmp, name), on_file=_writer(tmp))
        _seal(tmp)
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.exists():
                raise
            _force_rmtree(tmp)  # another extraction of the same hash won the race
    except BaseException:
        _force_rmtree(tmp)
        raise
    return dest


def _scan(data: bytes, max_unpacked: int, max_members: int, *, on_dir: DirSink, on_file: FileSink) -> None:
    """Walk the archive once, checking every member, handing directories and file contents to the sinks."""
    if not isinstance(data, bytes | bytearray | memoryview) or not bytes(data[:2]) == _GZIP_MAGIC:
        raise ArchiveError("code archive is not gzip-compressed tar data")
    stream = _BoundedStream(
        gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb"), max_unpacked + max_members * _OVERHEAD_PER_MEMBER
    )
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            _walk(tar, max_unpacked, max_members, on_dir, on_file)
        # Read to the end so gzip checks its CRC and rejects truncated or trailing garbage.
        while stream.read(_CHUNK):
            pass
    except _TooLarge:
        raise ArchiveError(f"code archive unpacks to more than {human_size(max_unpacked)}") from None
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ArchiveError(f"code archive is not a valid gzip-compressed tar: {exc or type(exc).__name__}") from None


def _walk(tar: tarfile.TarFile, max_unpacked: int, max_members: int, on_dir: DirSink, on_file: FileSink) -> None:
    count = 0
    unpacked = 0
    files: set[str] = set()
    dirs: set[str] = set()

    def counted(reader: IO[bytes]) -> Iterator[bytes]:
        nonlocal unpacked
        while chunk := reader.read(_CHUNK):
            unpacked += len(chunk)
            if unpacked > max_unpacked:
                raise _TooLarge
            yield chunk

    for member in tar:
        count += 1
        if count > max_members:
            raise ArchiveError(f"code archive has more than {max_members} members")
        name = _safe_name(member.name)
        _check_type(member)
        if name is None:
            continue
        parents = name.split("/")[:-1]
        for depth in range(1, len(parents) + 1):
            if "/".join(parents[:depth]) in files:
                raise ArchiveError(f"code archive member {member.name!r} is inside a file")
        if name in files or (name in dirs and not member.isdir()):
            raise ArchiveError(f"code archive has {member.name!r} twice")
        if member.isdir():
            dirs.add(name)
            on_dir(name)
            continue
        files.add(name)
        reader = tar.extractfile(member)
        if reader is None:
            raise ArchiveError(f"code archive member {member.name!r} has no contents")
        on_file(name, bool(member.mode & 0o111), counted(reader))


def _safe_name(raw: str) -> str | None:
    """The normalised relative path of a member, or None for the archive's root entry."""
    if not raw or "\x00" in raw:
        raise ArchiveError(f"code archive has a member with an invalid name {raw!r}")
    if raw.startswith("/"):
        raise ArchiveError(f"code archive member {raw!r} has an absolute path")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"code archive member {raw!r} leaves the archive with '..'")
    for part in parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise ArchiveError(
                f"code archive member {raw[:80]!r}... has a name part of {len(os.fsencode(part))} bytes; "
                f"file systems allow at most {NAME_MAX}"
            )
    name = "/".join(parts)
    if len(os.fsencode(name)) > MAX_MEMBER_PATH:
        raise ArchiveError(
            f"code archive member {raw[:80]!r}... has a path of {len(os.fsencode(name))} bytes; "
            f"the limit is {MAX_MEMBER_PATH}"
        )
    return name or None


def _check_type(member: tarfile.TarInfo) -> None:
    if member.issym() or member.islnk():
        raise ArchiveError(f"code archive member {member.name!r} is a link; links are not allowed")
    if member.ischr() or member.isblk() or member.isfifo():
        raise ArchiveError(
            f"code archive member {member.name!r} is a device or fifo; only files and folders are allowed"
        )
    if member.issparse():
        raise ArchiveError(f"code archive member {member.name!r} is a sparse file; sparse files are not allowed")
    if not (member.isreg() or member.isdir()):
        raise ArchiveError(f"code archive member {member.name!r} is not a regular file or folder")


def _discard(_name: str, _executable: bool, chunks: Iterator[bytes]) -> None:
    for _chunk in chunks:
        pass


def _make_dir(root: Path, name: str) -> None:
    (root / name).mkdir(parents=True, exist_ok=True)


def _writer(root: Path) -> FileSink:
    def write(name: str, executable: bool, chunks: Iterator[bytes]) -> None:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as out:
            out.writelines(chunks)
        target.chmod(0o555 if executable else 0o444)

    return write


def _seal(root: Path) -> None:
    """Make every folder read-only, deepest first (files were sealed as they were written)."""
    for folder, _dirs, _files in os.walk(root, topdown=False):
        os.chmod(folder, 0o555)


def _force_rmtree(root: Path) -> None:
    """Remove a tree even where it was already made read-only."""
    with contextlib.suppress(OSError):
        remove_tree(root)
