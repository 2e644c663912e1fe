"""R package ``DESCRIPTION`` files: reading them out of a source package, checking them, and what they say.

A ``DESCRIPTION`` is a Debian-style control file (DCF): ``Field: value`` lines,
continuation lines start with whitespace. The reservoir trusts nothing in it
that it does not check: the package name and version must match the file name,
and every tar member of the package must lie inside ``<package>/``, because
R unpacks the tarball as given.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

from ..errors import InvalidPackage

# Writing R Extensions, 1.1.1: letters, digits and dots, starting with a letter, not ending in a dot, 2+ chars.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]$")
# At least two non-negative integers separated by single dots or dashes.
_VERSION = re.compile(r"^[0-9]+([.-][0-9]+)+$")
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9/@._-]*):[ \t]*(.*)$")
_SOURCE_SUFFIX = ".tar.gz"
MAX_DESCRIPTION = 1024 * 1024
MAX_MEMBERS = 200_000
# Packages that ship with R itself: never fetched from a repository, never a missing dependency.
BASE_PACKAGES = frozenset(
    {
        "R",
        "base",
        "compiler",
        "datasets",
        "grDevices",
        "graphics",
        "grid",
        "methods",
        "parallel",
        "splines",
        "stats",
        "stats4",
        "tcltk",
        "tools",
        "utils",
    }
)
# The fields install.packages() follows by default (``dependencies = NA``).
DEPENDENCY_FIELDS = ("Depends", "Imports", "LinkingTo")
# The fields R's tools::write_PACKAGES puts into a repository's PACKAGES file, in its order.
INDEX_FIELDS = (
    "Package",
    "Version",
    "Priority",
    "Depends",
    "Imports",
    "LinkingTo",
    "Suggests",
    "Enhances",
    "License",
    "License_is_FOSS",
    "License_restricts_use",
    "OS_type",
    "Archs",
    "NeedsCompilation",
)


def check_package_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidPackage(
            f"invalid R package name {name!r} (letters, digits and dots, starting with a letter, at least 2 characters)"
        )
    return name


def check_version(version: str) -> str:
    if not _VERSION.match(version):
        raise InvalidPackage(f"invalid R package version {version!r} (numbers separated by '.' or '-', e.g. 1.0-2)")
    return version


def version_key(version: str) -> tuple[int, ...]:
    """R's ``package_version`` order: the numbers, dots and dashes alike."""
    return tuple(int(p) for p in re.split(r"[.-]", version))


def parse(text: str) -> dict[str, str]:
    """Fields of a DCF stanza, continuation lines joined with newlines; malformed lines are refused."""
    fields: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                raise InvalidPackage("DESCRIPTION holds more than one stanza")
            continue
        if line[0] in " \t":
            if last is None:
                raise InvalidPackage("DESCRIPTION starts with a continuation line")
            fields[last] += "\n" + line
            continue
        match = _FIELD.match(line)
        if not match:
            raise InvalidPackage(f"DESCRIPTION has a malformed line: {line[:80]!r}")
        last = match.group(1)
        if last in fields:
            raise InvalidPackage(f"DESCRIPTION repeats the field {last!r}")
        fields[last] = match.group(2)
    return fields


def check(text: str) -> tuple[str, str, dict[str, str]]:
    """``(package, version, fields)`` of a DESCRIPTION, or :class:`InvalidPackage` saying what is wrong."""
    fields = parse(text)
    for required in ("Package", "Version", "License"):
        if not fields.get(required, "").strip():
            raise InvalidPackage(f"DESCRIPTION has no {required} field")
    return check_package_name(fields["Package"].strip()), check_version(fields["Version"].strip()), fields


def source_filename(package: str, version: str) -> str:
    return f"{package}_{version}{_SOURCE_SUFFIX}"


def split_filename(filename: str) -> tuple[str, str]:
    """``(package, version)`` of ``<package>_<version>.tar.gz``."""
    if "/" in filename or not filename.endswith(_SOURCE_SUFFIX) or filename.count("_") != 1:
        raise InvalidPackage(f"{filename!r} is not an R source package name (<package>_<version>.tar.gz)")
    package, version = filename[: -len(_SOURCE_SUFFIX)].split("_")
    return check_package_name(package), check_version(version)


def read_source_package(path: Path, filename: str) -> str:
    """The ``DESCRIPTION`` of a source package, after checking every member lies inside ``<package>/``.

    Refused: not a gzip'd tar, a member outside the package folder (absolute, ``..``, another top folder),
    a link that points out of it, a device or FIFO, no ``<package>/DESCRIPTION``, one that does not match
    the file name.
    """
    package, version = split_filename(filename)
    text: str | None = None
    try:
        with tarfile.open(path, "r|gz") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise InvalidPackage(f"{filename}: more than {MAX_MEMBERS} members")
                _check_member(member, package, filename)
                if member.name.rstrip("/") == f"{package}/DESCRIPTION" and member.isfile():
                    if member.size > MAX_DESCRIPTION:
                        raise InvalidPackage(f"{filename}: DESCRIPTION is larger than {MAX_DESCRIPTION} bytes")
                    fh = tar.extractfile(member)
                    assert fh is not None
                    text = fh.read().decode("utf-8", "replace")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidPackage(f"{filename}: not a gzip-compressed tar archive ({exc})") from None
    if text is None:
        raise InvalidPackage(f"{filename}: no {package}/DESCRIPTION inside")
    got_package, got_version, _ = check(text)
    if (got_package, got_version) != (package, version):
        raise InvalidPackage(
            f"{filename}: DESCRIPTION says {got_package} {got_version}, the file name says {package} {version}"
        )
    return text


def _check_member(member: tarfile.TarInfo, package: str, filename: str) -> None:
    name = member.name
    parts = name.rstrip("/").split("/")
    if name.startswith("/") or ".." in parts or parts[0] != package:
        raise InvalidPackage(f"{filename}: member {name!r} lies outside {package}/")
    if member.issym() or member.islnk():
        target = member.linkname
        base = parts[:-1] if member.issym() else []
        resolved = [*base, *target.split("/")]
        depth = 0
        for part in resolved:
            depth += -1 if part == ".." else (0 if part in ("", ".") else 1)
            if depth < 1:
                raise InvalidPackage(f"{filename}: link {name!r} points outside {package}/")
        if target.startswith("/") or (member.islnk() and target.split("/")[0] != package):
            raise InvalidPackage(f"{filename}: link {name!r} points outside {package}/")
    elif not (member.isfile() or member.isdir()):
        raise InvalidPackage(f"{filename}: member {name!r} is not a file, folder or link")


def dependencies(fields: dict[str, str], which: tuple[str, ...] = DEPENDENCY_FIELDS) -> list[str]:
    """Package names a DESCRIPTION (or a PACKAGES stanza) depends on, without R and its base packages."""
    names: list[str] = []
    for field in which:
        for item in fields.get(field, "").replace("\n", " ").split(","):
            name = item.strip().split("(", 1)[0].strip()
            if name and name not in BASE_PACKAGES and name not in names:
                names.append(name)
    return names


# R license specifications (Writing R Extensions 1.1.2, R's share/licenses/license.db) -> SPDX identifiers.
_R_LICENSES = {
    "gpl-2": "GPL-2.0-only",
    "gpl-3": "GPL-3.0-only",
    "gpl (>= 2)": "GPL-2.0-or-later",
    "gpl (>= 2.0)": "GPL-2.0-or-later",
    "gpl (>= 3)": "GPL-3.0-or-later",
    "gpl (>= 3.0)": "GPL-3.0-or-later",
    "gpl": "GPL-2.0-or-later",
    "lgpl-2": "LGPL-2.0-only",
    "lgpl-2.1": "LGPL-2.1-only",
    "lgpl-3": "LGPL-3.0-only",
    "lgpl (>= 2)": "LGPL-2.0-or-later",
    "lgpl (>= 2.1)": "LGPL-2.1-or-later",
    "lgpl (>= 3)": "LGPL-3.0-or-later",
    "agpl-3": "AGPL-3.0-only",
    "agpl (>= 3)": "AGPL-3.0-or-later",
    "artistic-2.0": "Artistic-2.0",
    "bsd_2_clause": "BSD-2-Clause",
    "bsd_3_clause": "BSD-3-Clause",
    "mit": "MIT",
    "apache license 2.0": "Apache-2.0",
    "apache license (== 2.0)": "Apache-2.0",
    "apache license (>= 2)": "Apache-2.0",
    "apache license": "Apache-2.0",
    "mpl-2.0": "MPL-2.0",
    "mpl (>= 2)": "MPL-2.0",
    "cc0": "CC0-1.0",
    "cc by 4.0": "CC-BY-4.0",
    "cc by-sa 4.0": "CC-BY-SA-4.0",
    "cc by-nc 4.0": "CC-BY-NC-4.0",
    "cc by-nc-sa 4.0": "CC-BY-NC-SA-4.0",
    "eupl-1.2": "EUPL-1.2",
    "unlimited": "Unlicense",
}


def spdx_license(text: str) -> str | None:
    """The SPDX expression for an R ``License`` field, None when no alternative is a known license.

    Alternatives (``|``) become ``OR``; ``+ file LICENSE`` (the template MIT and BSD need, or extra terms)
    is dropped from each; an alternative that is only ``file LICENSE`` or an unknown name is left out, so
    ``GPL-2 | file LICENSE`` reads as ``GPL-2.0-only`` (the user may take the GPL).
    """
    found: list[str] = []
    for alternative in text.replace("\n", " ").split("|"):
        name = re.sub(r"\s*\+\s*file\s+LICEN[CS]E\s*$", "", alternative.strip(), flags=re.IGNORECASE)
        name = re.sub(r"\s+", " ", name).strip().lower()
        spdx = _R_LICENSES.get(name)
        if spdx and spdx not in found:
            found.append(spdx)
    return " OR ".join(found) if found else None
