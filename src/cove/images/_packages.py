"""The package manifest of an image: which Python distributions and Debian packages it holds.

Written into the image folder when the image is built (``cove-packages.json``)
so that what runs can be re-checked later against new advisories or a changed
license policy without rebuilding or starting anything. Everything here is
read from metadata files only (``*.dist-info/METADATA`` and dpkg's
``status``): nothing of the image is executed, because the image's contents
are its tenant's.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _layout

PACKAGES_FILE = "cove-packages.json"
FORMAT = 1
DPKG_STATUS = Path("var/lib/dpkg/status")
# A METADATA or dpkg status file larger than this is not read (a tenant could write anything there).
MAX_METADATA_BYTES = 4 << 20
MAX_STATUS_BYTES = 64 << 20
_LICENSE_CLASSIFIER = "License ::"


def _read_text(path: Path, limit: int) -> str | None:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > limit:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _distribution(dist_info: Path) -> dict[str, Any] | None:
    """Name, version and license fields of one installed distribution, from its ``METADATA``."""
    text = _read_text(dist_info / "METADATA", MAX_METADATA_BYTES)
    if text is None:
        return None
    headers = email.parser.Parser(policy=email.policy.compat32).parsestr(text, headersonly=True)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        return None
    declared = [str(c).strip() for c in headers.get_all("Classifier") or []]
    classifiers = [c for c in declared if c.startswith(_LICENSE_CLASSIFIER)]
    entry: dict[str, Any] = {"name": str(name).strip(), "version": str(version).strip()}
    for field, key in (("License-Expression", "license_expression"), ("License", "license")):
        value = headers.get(field)
        if value and str(value).strip():
            entry[key] = str(value).strip()[:2000]
    if classifiers:
        entry["classifiers"] = classifiers
    return entry


def python_packages(env: Path) -> list[dict[str, Any]]:
    """Every distribution installed in a venv (``lib/python*/site-packages``), sorted by name."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for site in sorted(env.glob("lib/python*/site-packages")):
        if site.is_symlink() or not site.is_dir():
            continue
        for dist_info in sorted(site.glob("*.dist-info")):
            entry = _distribution(dist_info)
            if entry is not None:
                found[(entry["name"].lower(), entry["version"])] = entry
    return [found[key] for key in sorted(found)]


def parse_dpkg_status(text: str) -> list[dict[str, Any]]:
    """The installed packages of a dpkg ``status`` file: package, version, architecture and source."""
    out = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        last = ""
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t"):
                continue  # a continuation line: no field we read spans lines
            name, sep, value = line.partition(":")
            if sep:
                last = name.strip().lower()
                fields[last] = value.strip()
        if not fields.get("package") or not fields.get("version"):
            continue
        if fields.get("status", "").split()[-1:] != ["installed"]:
            continue
        source, _, rest = fields.get("source", "").partition(" ")
        source_version = rest.strip().removeprefix("(").removesuffix(")").strip()
        out.append(
            {
                "package": fields["package"],
                "version": fields["version"],
                "architecture": fields.get("architecture", ""),
                "source": source or fields["package"],
                "source_version": source_version or fields["version"],
            }
        )
    return sorted(out, key=lambda p: (p["package"], p["architecture"]))


def debian_packages(roots: Sequence[Path]) -> list[dict[str, Any]] | None:
    """The installed Debian packages of a root filesystem given as layers, topmost first.

    The topmost layer that has dpkg's ``status`` file wins (apt in a system
    layer rewrites the whole file, so it lists the base's packages too).
    None when no layer has one (an image with no Debian root).
    """
    for root in roots:
        text = _read_text(root / DPKG_STATUS, MAX_STATUS_BYTES)
        if text is not None:
            return parse_dpkg_status(text)
    return None


def collect(env: Path, python_version: str, roots: Sequence[Path] = (), suite: str | None = None) -> dict[str, Any]:
    """The manifest of an image: its environment's distributions and its Debian root's packages."""
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "python_version": python_version,
        "python": python_packages(env),
    }
    debs = debian_packages(roots) if roots else None
    if debs is not None:
        manifest["debian"] = {"suite": suite, "packages": debs}
    return manifest


def write(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / PACKAGES_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def read(folder: Path) -> dict[str, Any] | None:
    """The stored manifest of an image folder, or None when the image was built without one."""
    text = _read_text(folder / PACKAGES_FILE, MAX_STATUS_BYTES)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def image_packages(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The package manifest of a built image: as stored, else read now from its folder and layers.

    Images built before manifests were written get theirs from the same
    metadata files; ``manifest`` is the image's ``cove-image.json``.
    """
    stored = read(folder)
    if stored is not None:
        return stored
    rootfs = manifest.get("rootfs")
    roots = [Path(str(p)) for p in manifest.get("layers", [])] + ([Path(rootfs)] if isinstance(rootfs, str) else [])
    return collect(folder, str(manifest.get("python_version", "")), roots, _suite(manifest))


def _suite(manifest: dict[str, Any]) -> str | None:
    suite = manifest.get("suite")
    return suite if isinstance(suite, str) else None


def packages_of(folder: Path) -> dict[str, Any] | None:
    """The package manifest of the image at ``folder`` (a built image, or an existing environment
    named by ``python_env``); None when nothing is there."""
    if not folder.is_dir():
        return None
    marker = _read_text(folder / _layout.MARKER, MAX_METADATA_BYTES)
    if marker is None:
        return collect(folder, "")  # an existing environment: its distributions only
    try:
        manifest = json.loads(marker)
    except ValueError:
        return None
    return image_packages(folder, manifest if isinstance(manifest, dict) else {})
