"""The store: ingest, events, immutability, validation."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from cove.reservoir.errors import InvalidPackage, ReservoirConflict, ReservoirNotFound
from cove.reservoir.names import normalize, parse_filename
from cove.reservoir.store import Store

from .conftest import Wheelhouse


def test_normalize() -> None:
    assert normalize("Foo.Bar__baz-Qux") == "foo-bar-baz-qux"
    assert parse_filename("cove_demo.beta-1.0-py3-none-any.whl").project == "cove-demo-beta"
    for bad in ("../x-1.0.tar.gz", "a/b-1.0-py3-none-any.whl", "x-1.0.exe", ".hidden-1.0.tar.gz", "x.whl"):
        with pytest.raises(InvalidPackage):
            parse_filename(bad)


def test_ingest_records_event_and_pages(store: Store, wheelhouse: Wheelhouse) -> None:
    path = wheelhouse["alpha-1.0"]
    record, added = store.add_file(path, path.name, origin="test")
    assert added and record.project == "cove-demo-alpha" and record.license_expression == "MIT"
    assert record.metadata_sha256 and store.blobs.has(record.metadata_sha256) and store.blobs.has(record.sha256)
    assert store.serial() == 1
    (event,) = store.events_since(0)
    assert event.kind == "file_added" and event.data["sha256"] == record.sha256
    pages = store.page("cove-demo-alpha")
    assert pages is not None
    doc = json.loads(pages[1])
    assert doc["files"][0]["core-metadata"] == {"sha256": record.metadata_sha256}
    assert b"data-core-metadata" in pages[0]
    # Same file again: no new event. Same name, other bytes: refused.
    assert store.add_file(path, path.name, origin="test")[1] is False
    assert store.serial() == 1
    other = wheelhouse["beta-1.0"]
    with pytest.raises(ReservoirConflict):
        store.add_file(other, path.name, origin="test")


def test_sdist_has_no_metadata_file(store: Store, wheelhouse: Wheelhouse) -> None:
    path = wheelhouse["gamma-0.1-sdist"]
    record, _ = store.add_file(path, path.name, origin="test")
    assert record.kind == "sdist" and record.metadata_sha256 is None
    pages = store.page("cove-demo-gamma")
    assert pages is not None and b"data-core-metadata" not in pages[0]
    assert "core-metadata" not in json.loads(pages[1])["files"][0]


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"x/__init__.py": ""}, "no .dist-info/METADATA"),
        ({"bad-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: bad\n\n"}, "missing Version"),
        ({"bad-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: other\nVersion: 1.0\n\n"}, "names project"),
        ({"bad-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: bad\nVersion: 2.0\n\n"}, "differs"),
        (
            {"bad-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: bad\nVersion: 1.0\nRequires-Python: >=>3\n\n"},
            "Requires-Python",
        ),
    ],
)
def test_malformed_wheels_are_refused(store: Store, tmp_path: Path, members: dict[str, str], message: str) -> None:
    path = _zip(tmp_path / "bad-1.0-py3-none-any.whl", members)
    with pytest.raises(InvalidPackage, match=message):
        store.add_file(path, path.name, origin="test")
    assert store.serial() == 0 and store.files() == []


def test_not_a_zip(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "bad-1.0-py3-none-any.whl"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(InvalidPackage, match="not a valid zip"):
        store.add_file(path, path.name, origin="test")
    assert store.files() == []


def test_yank_quarantine_remove_are_events(filled: Store, wheelhouse: Wheelhouse) -> None:
    name = wheelhouse["beta-1.0"].name
    start = filled.serial()
    filled.yank(name, "broken build")
    page = json.loads(filled.page("cove-demo-beta")[1])  # type: ignore[index]
    assert [f["yanked"] for f in page["files"] if f["filename"] == name] == ["broken build"]
    filled.unyank(name)
    filled.quarantine(name, "manual review")
    page = json.loads(filled.page("cove-demo-beta")[1])  # type: ignore[index]
    assert name not in [f["filename"] for f in page["files"]]
    filled.release(name)
    filled.remove(name)
    assert filled.get_file(name) is None
    kinds = [e.kind for e in filled.events_since(start)]
    assert kinds == ["yanked", "unyanked", "quarantined", "released", "file_removed"]
    with pytest.raises(ReservoirNotFound):
        filled.yank("nope-1.0-py3-none-any.whl")


def test_versions_sorted_and_root_page(filled: Store) -> None:
    doc = json.loads(filled.page("cove-demo-beta")[1])  # type: ignore[index]
    assert doc["versions"] == ["1.0", "2.0"] and doc["meta"]["api-version"] == "1.1"
    assert doc["name"] == "cove_demo.beta"
    root = json.loads(filled.page("/")[1])  # type: ignore[index]
    assert {p["name"] for p in root["projects"]} >= {"cove-demo-alpha", "cove_demo.beta"}


def test_single_index_root_is_migrated(tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    """A root from before indexes existed: uploads move to ``internal``, the rest to ``pypi``; pages re-render."""
    import sqlite3

    root = tmp_path / "old"
    store = Store(root)
    store.add_file(wheelhouse["beta-1.0"], wheelhouse["beta-1.0"].name, origin="sync:x")
    store.add_file(wheelhouse["gamma-0.1"], wheelhouse["gamma-0.1"].name, origin="upload:ci", index="internal")
    store.close()
    conn = sqlite3.connect(root / "reservoir.db")
    conn.executescript(
        "ALTER TABLE files DROP COLUMN index_name; ALTER TABLE upstream_links DROP COLUMN index_name;"
        "DELETE FROM pages; DELETE FROM claims; UPDATE meta SET value='1' WHERE key='schema_version';"
    )
    conn.close()
    again = Store(root)
    assert again.get_file(wheelhouse["beta-1.0"].name).index == "pypi"  # type: ignore[union-attr]
    assert again.get_file(wheelhouse["gamma-0.1"].name).index == "internal"  # type: ignore[union-attr]
    assert again.page("cove-demo-beta") is not None and again.page("internal/cove-demo-gamma") is not None
    assert again.get_meta("schema_version") == "3"
    again.close()
