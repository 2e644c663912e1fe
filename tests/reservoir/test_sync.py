"""Sync from a local upstream index (another reservoir, or a static PEP 503 tree) on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.staticfiles import StaticFiles

from cove.reservoir.errors import ReservoirError
from cove.reservoir.server import create_app
from cove.reservoir.store import Store
from cove.reservoir.sync import sync
from cove.reservoir.targets import Target, best_wheel

from .conftest import LiveServer, Wheelhouse, build_dist


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One release with wheels for several interpreters and platforms."""
    workdir = tmp_path_factory.mktemp("native")
    tags = [
        "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
        "cp312-cp312-manylinux_2_17_x86_64",
        "cp311-cp311-win_amd64",
        "cp311-cp311-manylinux_2_34_x86_64",
    ]
    return [build_dist(workdir / str(i), "cove-demo-native", "1.5", wheel_tag=tag) for i, tag in enumerate(tags)]


@pytest.fixture
def upstream(tmp_path: Path, wheelhouse: Wheelhouse, native: list[Path]) -> Iterator[tuple[Store, LiveServer]]:
    store = Store(tmp_path / "upstream")
    for path in [*wheelhouse.files.values(), *native]:
        store.add_file(path, path.name, origin="test")
    with LiveServer(create_app(store.layout.root, store=store)) as live:
        yield store, live
    store.close()


def test_target_tags() -> None:
    target = Target("3.11", "manylinux_2_28_x86_64")
    assert target.uv_platform() == "x86_64-manylinux_2_28"
    assert "manylinux2014_x86_64" in target.platforms() and "manylinux_2_34_x86_64" not in target.platforms()
    files = [
        "x-1-cp311-cp311-manylinux_2_34_x86_64.whl",
        "x-1-cp311-cp311-manylinux_2_17_x86_64.whl",
        "x-1-py3-none-any.whl",
        "x-1-cp312-cp312-manylinux_2_17_x86_64.whl",
    ]
    assert best_wheel(files, target) == "x-1-cp311-cp311-manylinux_2_17_x86_64.whl"
    assert best_wheel(files[2:3], Target("3.12", "win_amd64")) == "x-1-py3-none-any.whl"
    assert Target("3.11", "manylinux2014_aarch64").uv_platform() == "aarch64-manylinux2014"
    with pytest.raises(ReservoirError):
        Target("three", "linux_x86_64")


def test_sync_two_targets(tmp_path: Path, upstream: tuple[Store, LiveServer]) -> None:
    up_store, live = upstream
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("cove-demo-alpha\ncove-demo-native==1.5\n")
    local = Store(tmp_path / "local")
    targets = [Target("3.11", "manylinux_2_28_x86_64"), Target("3.12", "manylinux_2_28_x86_64")]
    report = sync(local, reqs, targets, f"{live.url}/simple/")
    held = {r.filename for r in local.files()}
    assert held == {
        "cove_demo_alpha-1.0-py3-none-any.whl",
        "cove_demo_beta-2.0-py3-none-any.whl",
        "cove_demo_native-1.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "cove_demo_native-1.5-cp312-cp312-manylinux_2_17_x86_64.whl",
    }
    assert sorted(report.pins) == ["py3.11-manylinux_2_28_x86_64", "py3.12-manylinux_2_28_x86_64"]
    # Upload time comes from upstream, not from the sync.
    for record in local.files():
        upstream_record = up_store.get_file(record.filename)
        assert upstream_record is not None
        assert record.upload_time == upstream_record.upload_time and record.sha256 == upstream_record.sha256
        assert record.metadata_sha256 == upstream_record.metadata_sha256
    serial = local.serial()
    again = sync(local, reqs, targets, f"{live.url}/simple/")
    assert again.added == [] and local.serial() == serial
    local.close()


def test_sync_cli_json(tmp_path: Path, upstream: tuple[Store, LiveServer]) -> None:
    _store, live = upstream
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("cove-demo-gamma\n")
    root = tmp_path / "cli-root"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cove.reservoir",
            "sync",
            "-r",
            str(reqs),
            "--python",
            "3.11",
            "--platform",
            "manylinux_2_28_x86_64",
            "--index-url",
            f"{live.url}/simple/",
            "--root",
            str(root),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["added"] == ["cove_demo_gamma-0.1-py3-none-any.whl"] and data["serial"] == 1
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "cove.reservoir",
            "sync",
            "-r",
            str(tmp_path / "nope.txt"),
            "--python",
            "3.11",
            "--platform",
            "manylinux_2_28_x86_64",
            "--index-url",
            f"{live.url}/simple/",
            "--root",
            str(root),
        ],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_unresolvable_is_a_clear_error(tmp_path: Path, upstream: tuple[Store, LiveServer]) -> None:
    _store, live = upstream
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("cove-demo-does-not-exist\n")
    local = Store(tmp_path / "local")
    with pytest.raises(ReservoirError, match=r"resolution for py3\.11"):
        sync(local, reqs, [Target("3.11", "manylinux_2_28_x86_64")], f"{live.url}/simple/")
    assert local.files() == []
    local.close()


def test_hash_mismatch_from_a_static_tree(tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    """A static PEP 503 tree whose link hash does not match the file: nothing is stored."""
    tree = tmp_path / "static"
    wheel = wheelhouse["gamma-0.1"]
    (tree / "simple" / "cove-demo-gamma").mkdir(parents=True)
    (tree / "files").mkdir()
    (tree / "files" / wheel.name).write_bytes(wheel.read_bytes())
    (tree / "simple" / "index.html").write_text('<a href="cove-demo-gamma/">cove-demo-gamma</a>')
    (tree / "simple" / "cove-demo-gamma" / "index.html").write_text(
        f'<a href="../../files/{wheel.name}#sha256={"0" * 64}">{wheel.name}</a>'
    )
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("cove-demo-gamma\n")
    local = Store(tmp_path / "local")
    with (
        LiveServer(StaticFiles(directory=tree, html=True)) as live,
        pytest.raises(ReservoirError, match="sha256 mismatch"),
    ):
        sync(local, reqs, [Target("3.11", "manylinux_2_28_x86_64")], f"{live.url}/simple/")
    assert local.files() == [] and local.serial() == 0
    assert [p for p in local.layout.blobs.rglob("*") if p.is_file()] == []
    assert list(local.layout.tmp.iterdir()) == []
    local.close()
