"""Packages put into a test server's own reservoir: tiny wheels, an advisory and a held import."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from cove.reservoir import keys
from cove.reservoir.bundle import export_bundle, import_bundle
from cove.reservoir.policy import import_vulndb
from cove.reservoir.store import Store


def wheel(folder: Path, name: str, version: str, license: str | None = None) -> Path:
    """A minimal valid wheel (metadata and one empty module), written by hand: nothing is built."""
    dist = name.replace("-", "_")
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    meta = f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n"
    meta += f"License-Expression: {license}\n" if license else ""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{dist}/__init__.py", "")
        z.writestr(f"{dist}-{version}.dist-info/METADATA", meta)
        z.writestr(
            f"{dist}-{version}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        z.writestr(f"{dist}-{version}.dist-info/RECORD", "")
    return path


def advisory(folder: Path, project: str, version: str, advisory_id: str) -> Path:
    """An OSV dump (``all.zip``) with one advisory against ``project`` ``version``."""
    path = folder / "all.zip"
    entry = {
        "id": advisory_id,
        "summary": f"{project} {version} is vulnerable",
        "affected": [{"package": {"ecosystem": "PyPI", "name": project}, "versions": [version]}],
    }
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{advisory_id}.json", json.dumps(entry))
    return path


def fill(reservoir: Path, work: Path, prefix: str) -> dict[str, str]:
    """Two projects of ``prefix`` in ``reservoir`` (one vulnerable) and an import from another site held for review."""
    work.mkdir(parents=True, exist_ok=True)
    store = Store(reservoir)
    try:
        safe = wheel(work, f"{prefix}-safe", "1.0", "MIT")
        risky = wheel(work, f"{prefix}-risky", "2.0", "Apache-2.0")
        for path in (safe, risky):
            store.add_file(path, path.name, origin="add", index="pypi")
        import_vulndb(store, advisory(work, f"{prefix}-risky", "2.0", "PYSEC-2099-16"))
        online = Store(work / "online")
        try:
            held = wheel(work, f"{prefix}-held", "0.1", "BSD-3-Clause")
            online.add_file(held, held.name, origin="add", index="pypi")
            export_bundle(online, work / "bundle.tar")
            keys.trust(store.layout, keys.public_key_file(online.layout))
        finally:
            online.close()
        report = import_bundle(store, work / "bundle.tar", hold=True)
        assert report.held_id is not None
        return {
            "safe": safe.name,
            "risky": risky.name,
            "held": held.name,
            "review_id": str(report.held_id),
            "held_from": report.source_id,
            "held_serials": f"{report.base_serial} → {report.target_serial}",  # as the pages show a bundle's
        }
    finally:
        store.close()
