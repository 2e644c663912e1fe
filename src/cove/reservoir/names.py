"""Project names and distribution filenames.

Names are compared in their PEP 503 normalised form everywhere; filenames are
parsed once at ingest so a wrong or dangerous filename never reaches the store.
"""

from __future__ import annotations

import dataclasses
import re

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from .errors import InvalidPackage

_NORMALISE = re.compile(r"[-_.]+")
_VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")


def normalize(name: str) -> str:
    """PEP 503 normalised form: runs of ``-_.`` become ``-``, lower case."""
    return _NORMALISE.sub("-", name).lower()


def is_valid_name(name: str) -> bool:
    """True when ``name`` is a valid project name (PEP 508 / core metadata rules)."""
    return bool(_VALID_NAME.match(name))


@dataclasses.dataclass(frozen=True)
class DistFile:
    """What a distribution filename says about itself."""

    filename: str
    project: str  # normalised
    version: str
    kind: str  # "wheel" or "sdist"


def parse_filename(filename: str) -> DistFile:
    """Parse a wheel or sdist filename; refuse anything else, including path tricks."""
    if len(filename) > 255 or not _SAFE_FILENAME.match(filename):
        raise InvalidPackage(f"invalid distribution filename {filename!r}")
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
            return DistFile(filename, normalize(str(name)), str(version), "wheel")
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return DistFile(filename, normalize(str(name)), str(version), "sdist")
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise InvalidPackage(f"invalid distribution filename {filename!r}: {exc}") from None
    raise InvalidPackage(f"unsupported file type {filename!r}: only wheels (.whl) and sdists (.tar.gz, .zip)")
