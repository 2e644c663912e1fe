"""Debian packages for the tests, built with ``dpkg-deb --build`` (no mirror needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def build_deb(
    workdir: Path, package: str, version: str, source: str | None = None, *, depends: str | None = None
) -> Path:
    """A small ``Architecture: all`` package holding one README; ``depends`` is its ``Depends:`` field."""
    root = workdir / f"{package}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "share" / "doc" / package).mkdir(parents=True)
    (root / "usr" / "share" / "doc" / package / "README").write_text(f"{package} {version}\n")
    lines = [
        f"Package: {package}",
        f"Version: {version}",
        "Architecture: all",
        "Maintainer: Cove Tests <tests@example.invalid>",
        f"Description: test package {package}",
    ]
    if source:
        lines.insert(1, f"Source: {source}")
    if depends:
        lines.insert(-1, f"Depends: {depends}")
    (root / "DEBIAN" / "control").write_text("\n".join(lines) + "\n")
    out = workdir / f"{package}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)], check=True, capture_output=True)
    return out
