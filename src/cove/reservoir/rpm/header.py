"""Reading an RPM file's header and checking its digests, in Python (no ``rpm`` binary needed at ingest).

An RPM is a 96-byte lead, a signature header (padded to 8 bytes), the main
header, and the compressed payload. The signature header holds digests of
the main header (SHA256, or SHA1 on older packages) and, on old packages, an
MD5 of header and payload; rpm 4.14 and later put a digest of the payload
into the main header (``PAYLOADDIGEST``). Every digest present is checked,
and a package must carry one for its header and one for its payload: that is
what ``rpm -K`` checks without keys, and it is how a package altered after it
was built (a changed file inside, a changed license tag) is refused.

The file name must be the package's canonical one,
``<name>-<version>-<release>.<arch>.rpm``, which is what ``createrepo_c``
publishes and what a client asks for. Source RPMs are refused: dnf installs
binary packages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import struct
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import InvalidPackage

LEAD_MAGIC = b"\xed\xab\xee\xdb"
HEADER_MAGIC = b"\x8e\xad\xe8\x01"
LEAD_SIZE = 96
MAX_INDEX = 200_000
MAX_STORE = 256 * 1024 * 1024

# Signature header tags.
SIG_SIZE = 1000
SIG_MD5 = 1004
SIG_SHA1 = 269
SIG_SHA256 = 273
# Main header tags.
NAME, VERSION, RELEASE, EPOCH, SUMMARY = 1000, 1001, 1002, 1003, 1004
BUILDTIME, LICENSE, URL, ARCH, SOURCERPM = 1006, 1014, 1020, 1022, 1044
PAYLOADDIGEST, PAYLOADDIGESTALGO = 5092, 5093
# rpm's PGPHASHALGO numbers -> hashlib names.
_DIGEST_ALGOS = {1: "md5", 2: "sha1", 8: "sha256", 9: "sha384", 10: "sha512"}

_TYPE_INT = {2: ("B", 1), 3: (">H", 2), 4: (">I", 4), 5: (">Q", 8)}
_STRING, _BIN, _STRING_ARRAY, _I18N = 6, 7, 8, 9

_NAME = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9._+~^]+$")
_ARCH = re.compile(r"^[A-Za-z0-9_]+$")


@dataclasses.dataclass(frozen=True)
class RpmHeader:
    """What the reservoir keeps of a package's header (the rest stays in the file, for createrepo_c)."""

    name: str
    epoch: int
    version: str
    release: str
    arch: str
    license: str
    summary: str
    url: str
    sourcerpm: str
    buildtime: int

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.release}.{self.arch}.rpm"

    @property
    def evr(self) -> str:
        text = f"{self.version}-{self.release}"
        return f"{self.epoch}:{text}" if self.epoch else text

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RpmHeader:
        """Rebuild from event data, checking each field (a bundle could lie)."""
        try:
            header = cls(
                name=str(data["name"]),
                epoch=int(data.get("epoch") or 0),
                version=str(data["version"]),
                release=str(data["release"]),
                arch=str(data["arch"]),
                license=str(data.get("license") or ""),
                summary=str(data.get("summary") or ""),
                url=str(data.get("url") or ""),
                sourcerpm=str(data.get("sourcerpm") or ""),
                buildtime=int(data.get("buildtime") or 0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidPackage(f"malformed RPM header data: {exc}") from None
        return header.checked()

    def checked(self) -> RpmHeader:
        for what, value, pattern in (
            ("name", self.name, _NAME),
            ("version", self.version, _VERSION),
            ("release", self.release, _VERSION),
            ("arch", self.arch, _ARCH),
        ):
            if not pattern.match(value):
                raise InvalidPackage(f"RPM header has an invalid {what} {value!r}")
        if self.epoch < 0:
            raise InvalidPackage(f"RPM header has a negative epoch {self.epoch}")
        return self


@dataclasses.dataclass
class _Header:
    entries: dict[int, tuple[int, int, int]]  # tag -> (type, offset, count)
    store: bytes
    raw: bytes  # the whole header structure, magic to the end of its data store: what its digests cover

    def value(self, tag: int) -> Any:
        if tag not in self.entries:
            return None
        kind, offset, count = self.entries[tag]
        if offset > len(self.store):
            raise InvalidPackage(f"RPM header tag {tag} points outside the header")
        if kind in _TYPE_INT:
            fmt, size = _TYPE_INT[kind]
            end = offset + size * count
            if end > len(self.store) or count < 1:
                raise InvalidPackage(f"RPM header tag {tag} runs past the header")
            return [struct.unpack_from(fmt, self.store, offset + i * size)[0] for i in range(count)]
        if kind == _BIN:
            if offset + count > len(self.store):
                raise InvalidPackage(f"RPM header tag {tag} runs past the header")
            return self.store[offset : offset + count]
        if kind in (_STRING, _STRING_ARRAY, _I18N):
            strings = []
            for _ in range(count if kind != _STRING else 1):
                end = self.store.find(b"\0", offset)
                if end < 0:
                    raise InvalidPackage(f"RPM header tag {tag} has an unterminated string")
                strings.append(self.store[offset:end].decode("utf-8", "replace"))
                offset = end + 1
            return strings
        return None

    def string(self, tag: int) -> str:
        value = self.value(tag)
        return value[0] if isinstance(value, list) and value and isinstance(value[0], str) else ""

    def number(self, tag: int) -> int | None:
        value = self.value(tag)
        return value[0] if isinstance(value, list) and value and isinstance(value[0], int) else None


def _read_exact(fh: BinaryIO, size: int, what: str) -> bytes:
    data = fh.read(size)
    if len(data) != size:
        raise InvalidPackage(f"not an RPM file: truncated {what}")
    return data


def _read_header(fh: BinaryIO, what: str) -> _Header:
    intro = _read_exact(fh, 16, what)
    if intro[:4] != HEADER_MAGIC:
        raise InvalidPackage(f"not an RPM file: bad {what} magic")
    count, size = struct.unpack(">II", intro[8:16])
    if count > MAX_INDEX or size > MAX_STORE:
        raise InvalidPackage(f"RPM {what} is implausibly large ({count} entries, {size} bytes)")
    index = _read_exact(fh, 16 * count, what)
    store = _read_exact(fh, size, what)
    entries = {}
    for position in range(count):
        tag, kind, offset, n = struct.unpack_from(">IIiI", index, position * 16)
        if offset < 0:
            raise InvalidPackage(f"RPM {what} tag {tag} has a negative offset")
        entries[tag] = (kind, offset, n)
    return _Header(entries, store, intro + index + store)


def _hex(value: Any) -> str:
    return value.hex() if isinstance(value, bytes) else (value[0] if isinstance(value, list) and value else "")


def read(path: Path, filename: str | None = None) -> RpmHeader:
    """The checked header of an RPM file; :class:`InvalidPackage` says what is wrong.

    ``filename`` (default: the path's) must be the package's canonical file name.
    """
    name = filename or path.name
    total = path.stat().st_size
    with path.open("rb") as fh:
        lead = _read_exact(fh, LEAD_SIZE, "lead")
        if lead[:4] != LEAD_MAGIC:
            raise InvalidPackage(f"{name}: not an RPM file (no RPM lead)")
        if struct.unpack(">H", lead[6:8])[0] != 0:
            raise InvalidPackage(f"{name}: a source RPM; the repository serves binary packages")
        signature = _read_header(fh, "signature header")
        fh.read((8 - len(signature.raw) % 8) % 8)  # the signature header is padded to 8 bytes
        main = _read_header(fh, "header")
        payload_start = fh.tell()
        header_digests = {"sha256": _hex(signature.value(SIG_SHA256)), "sha1": _hex(signature.value(SIG_SHA1))}
        header_digests = {k: v for k, v in header_digests.items() if v}
        if not header_digests:
            raise InvalidPackage(f"{name}: carries no header digest (SHA256 or SHA1); cannot check it")
        for algo, expected in header_digests.items():
            if hashlib.new(algo, main.raw).hexdigest() != expected.lower():
                raise InvalidPackage(f"{name}: header {algo.upper()} digest does not match (the package was altered)")
        expected_size = signature.number(SIG_SIZE)
        if expected_size is not None and expected_size != total - payload_start + len(main.raw):
            raise InvalidPackage(f"{name}: size does not match its signature header (truncated or altered)")
        payload_algo = _DIGEST_ALGOS.get(main.number(PAYLOADDIGESTALGO) or 8)
        payload_digest = main.value(PAYLOADDIGEST)
        md5 = signature.value(SIG_MD5)
        checks: list[tuple[str, str, hashlib._Hash]] = []
        if payload_digest and payload_algo:
            checks.append(("payload", _hex(payload_digest).lower(), hashlib.new(payload_algo)))
        if isinstance(md5, bytes):
            whole = hashlib.md5(main.raw, usedforsecurity=False)
            checks.append(("header and payload MD5", md5.hex(), whole))
        if not checks:
            raise InvalidPackage(f"{name}: carries no payload digest; cannot check it")
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            for _, _, digest in checks:
                digest.update(chunk)
        for what, expected, digest in checks:
            if digest.hexdigest() != expected:
                raise InvalidPackage(f"{name}: {what} digest does not match (the package was altered)")
    if not main.string(SOURCERPM):
        raise InvalidPackage(f"{name}: a source RPM; the repository serves binary packages")
    header = RpmHeader(
        name=main.string(NAME),
        epoch=main.number(EPOCH) or 0,
        version=main.string(VERSION),
        release=main.string(RELEASE),
        arch=main.string(ARCH),
        license=main.string(LICENSE),
        summary=main.string(SUMMARY),
        url=main.string(URL),
        sourcerpm=main.string(SOURCERPM),
        buildtime=main.number(BUILDTIME) or 0,
    ).checked()
    if name != header.filename:
        raise InvalidPackage(f"{name}: the header says {header.filename}; RPMs are stored under their own name")
    return header


def split_filename(filename: str) -> tuple[str, str]:
    """``(name-version-release, arch)`` of a canonical RPM file name, or :class:`InvalidPackage`."""
    if "/" in filename or not filename.endswith(".rpm") or filename.endswith(".src.rpm"):
        raise InvalidPackage(f"{filename!r} is not a binary RPM file name (<name>-<version>-<release>.<arch>.rpm)")
    stem, _, arch = filename[: -len(".rpm")].rpartition(".")
    if not stem or stem.count("-") < 2 or not _ARCH.match(arch):
        raise InvalidPackage(f"{filename!r} is not a binary RPM file name (<name>-<version>-<release>.<arch>.rpm)")
    return stem, arch
