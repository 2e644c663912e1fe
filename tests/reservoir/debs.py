"""Debian packages for the tests, built with ``dpkg-deb --build`` (no mirror needed)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path


def build_deb(
    workdir: Path,
    package: str,
    version: str,
    source: str | None = None,
    *,
    depends: str | None = None,
    architecture: str = "all",
    files: Mapping[str, tuple[bytes, int]] | None = None,
) -> Path:
    """A small package holding one README; ``depends`` is its ``Depends:`` field.

    ``architecture`` is its ``Architecture:`` field (``all`` unless told); ``files`` adds more payload, each an
    absolute path in the package (``/usr/bin/x``) mapped to its content and mode.
    """
    root = workdir / f"{package}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "share" / "doc" / package).mkdir(parents=True)
    (root / "usr" / "share" / "doc" / package / "README").write_text(f"{package} {version}\n")
    for name, (content, mode) in (files or {}).items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    lines = [
        f"Package: {package}",
        f"Version: {version}",
        f"Architecture: {architecture}",
        "Maintainer: Cove Tests <tests@example.invalid>",
        f"Description: test package {package}",
    ]
    if source:
        lines.insert(1, f"Source: {source}")
    if depends:
        lines.insert(-1, f"Depends: {depends}")
    (root / "DEBIAN" / "control").write_text("\n".join(lines) + "\n")
    out = workdir / f"{package}_{version}_{architecture}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)], check=True, capture_output=True)
    return out
