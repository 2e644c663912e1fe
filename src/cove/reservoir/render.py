"""Rendering Simple Repository API pages to bytes.

Pages are rendered when the store changes, not when a client asks, so the
server's hot path only looks up bytes. Links are relative to the page, which
keeps them right however the app is mounted (``/``, ``/reservoir/``, behind a
proxy).
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from packaging.version import InvalidVersion, Version

API_VERSION = "1.1"
# From a project page back to the app root: ``/simple/<name>/`` and ``/<index>/simple/<name>/``.
COMBINED_DEPTH = "../../"
INDEX_DEPTH = "../../../"


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One file as it appears on a project page."""

    filename: str
    version: str
    sha256: str
    size: int
    requires_python: str | None
    upload_time: str | None
    yanked: bool
    yank_reason: str | None
    metadata_sha256: str | None


def file_path(sha256: str, filename: str) -> str:
    """Path of a file below the app root; the hash in the path makes every URL immutable."""
    return f"files/{sha256}/{quote(filename)}"


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _sorted_versions(files: Iterable[FileEntry]) -> list[str]:
    return sorted({f.version for f in files}, key=_version_key)


def project_html(display: str, files: Sequence[FileEntry], up: str = COMBINED_DEPTH) -> bytes:
    """PEP 503 page with PEP 592/629/658/714 attributes."""
    title = html.escape(display)
    out = [
        "<!DOCTYPE html>\n<html>\n<head>\n",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">\n',
        f"<title>Links for {title}</title>\n</head>\n<body>\n<h1>Links for {title}</h1>\n",
    ]
    for f in files:
        attrs = [f'href="{up}{file_path(f.sha256, f.filename)}#sha256={f.sha256}"']
        if f.requires_python:
            attrs.append(f'data-requires-python="{html.escape(f.requires_python, quote=True)}"')
        if f.metadata_sha256:
            attrs.append(f'data-dist-info-metadata="sha256={f.metadata_sha256}"')
            attrs.append(f'data-core-metadata="sha256={f.metadata_sha256}"')
        if f.yanked:
            attrs.append(f'data-yanked="{html.escape(f.yank_reason or "", quote=True)}"')
        out.append(f"<a {' '.join(attrs)}>{html.escape(f.filename)}</a><br>\n")
    out.append("</body>\n</html>\n")
    return "".join(out).encode()


def project_json(display: str, files: Sequence[FileEntry], up: str = COMBINED_DEPTH) -> bytes:
    """PEP 691 JSON with PEP 700 ``versions``, ``size`` and ``upload-time``."""
    entries = []
    for f in files:
        entry: dict[str, object] = {
            "filename": f.filename,
            "url": f"{up}{file_path(f.sha256, f.filename)}",
            "hashes": {"sha256": f.sha256},
            "size": f.size,
        }
        if f.requires_python:
            entry["requires-python"] = f.requires_python
        if f.metadata_sha256:
            entry["core-metadata"] = {"sha256": f.metadata_sha256}
            entry["dist-info-metadata"] = {"sha256": f.metadata_sha256}
        if f.yanked:
            entry["yanked"] = f.yank_reason or True
        if f.upload_time:
            entry["upload-time"] = f.upload_time
        entries.append(entry)
    doc = {
        "meta": {"api-version": API_VERSION},
        "name": display,
        "versions": _sorted_versions(files),
        "files": entries,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def root_html(projects: Sequence[tuple[str, str]]) -> bytes:
    """The PEP 503 project list; ``projects`` are ``(normalised, display)`` pairs."""
    out = [
        "<!DOCTYPE html>\n<html>\n<head>\n",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">\n',
        "<title>Simple index</title>\n</head>\n<body>\n",
    ]
    for name, display in projects:
        out.append(f'<a href="{quote(name)}/">{html.escape(display)}</a><br>\n')
    out.append("</body>\n</html>\n")
    return "".join(out).encode()


def root_json(projects: Sequence[tuple[str, str]]) -> bytes:
    doc = {"meta": {"api-version": API_VERSION}, "projects": [{"name": display} for _name, display in projects]}
    return json.dumps(doc, separators=(",", ":")).encode()
