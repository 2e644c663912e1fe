"""Reading and validating the core metadata inside distribution files.

Runs once at ingest: the wheel's ``METADATA`` is checked against its filename
and kept as its own blob, so it can be served as a PEP 658 ``.metadata`` file
without opening the wheel again.
"""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import tarfile
import zipfile
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from .errors import InvalidPackage
from .names import DistFile, normalize

MAX_METADATA_BYTES = 8 * 1024 * 1024
MAX_MEMBERS = 200_000


@dataclasses.dataclass(frozen=True)
class CoreMetadata:
    """The fields of core metadata the reservoir uses."""

    raw: bytes
    name: str
    version: str
    requires_python: str | None
    license_expression: str | None
    license: str | None
    classifiers: tuple[str, ...]
    summary: str | None


def parse_core_metadata(raw: bytes, dist: DistFile) -> CoreMetadata:
    """Parse ``METADATA``/``PKG-INFO`` bytes and check they describe the file they came from."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPackage(f"{dist.filename}: metadata is not valid UTF-8") from None
    msg = email.parser.Parser(policy=email.policy.compat32).parsestr(text, headersonly=True)
    meta_version = msg.get("Metadata-Version")
    name = msg.get("Name")
    version = msg.get("Version")
    if not meta_version or not name or not version:
        missing = [k for k, v in (("Metadata-Version", meta_version), ("Name", name), ("Version", version)) if not v]
        raise InvalidPackage(f"{dist.filename}: metadata is missing {', '.join(missing)}")
    name, version = str(name).strip(), str(version).strip()
    if normalize(name) != dist.project:
        raise InvalidPackage(f"{dist.filename}: metadata names project {name!r}, the filename says {dist.project!r}")
    try:
        same = Version(version) == Version(dist.version)
    except InvalidVersion:
        raise InvalidPackage(f"{dist.filename}: metadata version {version!r} is not a valid PEP 440 version") from None
    if not same:
        raise InvalidPackage(
            f"{dist.filename}: metadata version {version!r} differs from the filename's {dist.version!r}"
        )
    requires_python = _clean(msg.get("Requires-Python"))
    if requires_python is not None:
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier:
            raise InvalidPackage(f"{dist.filename}: invalid Requires-Python {requires_python!r}") from None
    return CoreMetadata(
        raw=raw,
        name=name,
        version=version,
        requires_python=requires_python,
        license_expression=_clean(msg.get("License-Expression")),
        license=_clean(msg.get("License")),
        classifiers=tuple(str(c).strip() for c in msg.get_all("Classifier") or ()),
        summary=_clean(msg.get("Summary")),
    )


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def read_wheel_metadata(path: Path, dist: DistFile) -> CoreMetadata:
    """Open a wheel, find its single ``*.dist-info/METADATA`` and validate it."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise InvalidPackage(f"{dist.filename}: too many members ({len(infos)})")
            candidates = [i for i in infos if _is_top_metadata(i.filename)]
            if not candidates:
                raise InvalidPackage(f"{dist.filename}: no .dist-info/METADATA in the wheel")
            if len(candidates) > 1:
                raise InvalidPackage(f"{dist.filename}: more than one .dist-info/METADATA in the wheel")
            info = candidates[0]
            if info.file_size > MAX_METADATA_BYTES:
                raise InvalidPackage(f"{dist.filename}: METADATA is larger than {MAX_METADATA_BYTES} bytes")
            with zf.open(info) as fh:
                raw = fh.read(MAX_METADATA_BYTES + 1)
            if len(raw) > MAX_METADATA_BYTES:
                raise InvalidPackage(f"{dist.filename}: METADATA is larger than {MAX_METADATA_BYTES} bytes")
    except zipfile.BadZipFile as exc:
        raise InvalidPackage(f"{dist.filename}: not a valid zip archive ({exc})") from None
    except (OSError, ValueError, NotImplementedError, EOFError) as exc:
        raise InvalidPackage(f"{dist.filename}: unreadable wheel ({exc})") from None
    return parse_core_metadata(raw, dist)


def _is_top_metadata(member: str) -> bool:
    parts = member.split("/")
    return len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA"


def read_sdist_metadata(path: Path, dist: DistFile) -> CoreMetadata | None:
    """Read ``PKG-INFO`` from an sdist when it has one; a broken archive is refused."""
    raw: bytes | None = None
    try:
        if dist.filename.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist()[:MAX_MEMBERS]:
                    if info.filename.count("/") == 1 and info.filename.endswith("/PKG-INFO"):
                        if info.file_size <= MAX_METADATA_BYTES:
                            raw = zf.read(info)
                        break
        else:
            with tarfile.open(path, "r:gz") as tf:
                for count, member in enumerate(tf):
                    if count > MAX_MEMBERS:
                        break
                    if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/PKG-INFO"):
                        if member.size <= MAX_METADATA_BYTES:
                            fh = tf.extractfile(member)
                            raw = fh.read() if fh else None
                        break
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidPackage(f"{dist.filename}: not a valid source archive ({exc})") from None
    if raw is None:
        return None
    return parse_core_metadata(raw, dist)
