"""Debian control stanzas and pool filenames, checked before they reach a ``Packages`` file.

A stanza travels in a bundle's event and is copied into ``Packages`` as is,
so a blank line or a stray line in it would let a bundle add packages the
signature never covered; every line must be a field or a continuation.
"""

from __future__ import annotations

import re

from ..errors import InvalidPackage

MAX_CONTROL = 256 * 1024
# Written by the repository, never copied from a package.
REPO_FIELDS = frozenset({"filename", "size", "md5sum", "sha1", "sha256", "sha512", "status"})

_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_VERSION = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*$")
_ARCH = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_FIELD = re.compile(r"^[!-9;-~][!-9;-~]*:")
_SUITE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")


def parse(text: str) -> dict[str, str]:
    """Fields of one stanza (names as written, values with continuation lines joined by newlines)."""
    if len(text) > MAX_CONTROL:
        raise InvalidPackage("control data is larger than the limit")
    fields: dict[str, str] = {}
    last: str | None = None
    for line in text.rstrip("\n").split("\n"):
        if line[:1] in (" ", "\t"):
            if last is None:
                raise InvalidPackage("control data starts with a continuation line")
            fields[last] += "\n" + line
        elif _FIELD.match(line):
            name, _, value = line.partition(":")
            last = name
            fields[name] = value.strip()
        else:
            raise InvalidPackage(f"malformed control line {line[:60]!r}")
    return fields


def check(text: str) -> tuple[str, str, str]:
    """``(package, version, architecture)`` of a valid stanza."""
    fields = {k.lower(): v for k, v in parse(text).items()}
    package, version, arch = fields.get("package", ""), fields.get("version", ""), fields.get("architecture", "")
    if not _PACKAGE.match(package) or not _VERSION.match(version) or not _ARCH.match(arch):
        raise InvalidPackage(f"control data has an invalid Package/Version/Architecture ({package} {version} {arch})")
    return package, version, arch


def stanza_for_index(text: str, filename: str, size: int, sha256: str) -> str:
    """The package's stanza with the repository's own Filename, Size and SHA256."""
    kept = []
    skip = False
    for line in text.rstrip("\n").split("\n"):
        if line[:1] in (" ", "\t"):
            if not skip:
                kept.append(line)
            continue
        skip = line.partition(":")[0].lower() in REPO_FIELDS
        if not skip:
            kept.append(line)
    kept += [f"Filename: {filename}", f"Size: {size}", f"SHA256: {sha256}"]
    return "\n".join(kept) + "\n"


def pool_filename(package: str, version: str, arch: str) -> str:
    """Debian's pool naming: ``package_version_arch.deb`` with the epoch dropped."""
    return f"{package}_{version.split(':', 1)[-1]}_{arch}.deb"


def pool_path(component: str, package: str, filename: str) -> str:
    prefix = package[:4] if package.startswith("lib") and len(package) > 3 else package[0]
    return f"pool/{component}/{prefix}/{package}/{filename}"


def check_suite(name: str) -> str:
    if not _SUITE.match(name or ""):
        raise InvalidPackage(f"invalid suite or component name {name!r}")
    return name
