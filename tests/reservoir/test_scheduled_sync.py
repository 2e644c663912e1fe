"""``sync --every``: one bundle per run with only what changed, against a local upstream, across restarts."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from cove.reservoir import keys
from cove.reservoir.bundle import import_bundle
from cove.reservoir.errors import ReservoirError
from cove.reservoir.scheduled import STATE_NAME, ScheduleState, _recover, parse_interval
from cove.reservoir.server import create_app
from cove.reservoir.store import Store

from .conftest import LiveServer, Wheelhouse

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def upstream(tmp_path: Path, wheelhouse: Wheelhouse) -> Iterator[tuple[Store, LiveServer]]:
    store = Store(tmp_path / "upstream")
    for key in ("alpha-1.0", "beta-1.0"):
        store.add_file(wheelhouse[key], wheelhouse[key].name, origin="test")
    with LiveServer(create_app(store.layout.root, store=store)) as live:
        yield store, live
    store.close()


def _start(tmp_path: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("cove-demo-alpha\n")
    cmd = [sys.executable, "-m", "cove.reservoir", "sync", "-r", str(reqs), "--python", "3.11"]
    cmd += ["--platform", "manylinux_2_28_x86_64", "--index-url", f"{url}/simple/", "--every", "5s"]
    cmd += ["--bundles", str(tmp_path / "out"), "--root", str(tmp_path / "local"), "--json", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _next_run(stdout: IO[str] | None) -> dict[str, Any]:
    assert stdout is not None
    while line := stdout.readline():
        entry: dict[str, Any] = json.loads(line)
        if entry["event"] in ("run", "failed"):
            return entry
    raise AssertionError("the scheduled sync stopped")


def _bundles(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith("bundle-"))


def test_a_bundle_per_run_with_only_what_changed(
    tmp_path: Path, upstream: tuple[Store, LiveServer], wheelhouse: Wheelhouse
) -> None:
    up, live = upstream
    proc = _start(tmp_path, live.url)
    try:
        first = _next_run(proc.stdout)
        assert first["event"] == "run" and first["sync"]["added"] == 2, first
        assert first["base_serial"] == 0 and first["bundle"].endswith(f"bundle-00000000-{first['serial']:08d}")
        quiet = _next_run(proc.stdout)
        assert quiet["bundle"] is None and quiet["sync"]["added"] == 0  # nothing changed: no bundle
        up.add_file(wheelhouse["beta-2.0"], wheelhouse["beta-2.0"].name, origin="test")
        second = _next_run(proc.stdout)
        assert second["base_serial"] == first["serial"] and second["sync"]["added"] == 1, second
        manifest = json.loads((Path(second["bundle"]) / "manifest.json").read_text())
        assert [e["filename"] for e in manifest["events"]] == [wheelhouse["beta-2.0"].name]
    finally:
        proc.kill()  # no clean shutdown: the state on disk must be enough
        proc.communicate()
    assert _bundles(tmp_path) == [Path(first["bundle"]).name, Path(second["bundle"]).name]
    state = json.loads((tmp_path / "out" / STATE_NAME).read_text())
    assert state["last_serial"] == second["serial"] and state["bundles"] == 2

    restarted = _start(tmp_path, live.url, "--runs", "1")
    out, err = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[-1]["started"] >= state["next_run"]  # a restart does not run before the next run is due
    assert lines[-1]["event"] == "run" and lines[-1]["bundle"] is None
    assert len(_bundles(tmp_path)) == 2

    # The bundles apply in order on a sealed site and give it the same files.
    local = Store(tmp_path / "local")
    sealed = Store(tmp_path / "sealed")
    keys.trust(sealed.layout, keys.public_key_file(local.layout))
    for name in _bundles(tmp_path):
        import_bundle(sealed, tmp_path / "out" / name)
    assert {r.filename for r in sealed.files()} == {r.filename for r in local.files()}
    assert len(sealed.files()) == 3
    local.close()
    sealed.close()


def test_a_second_loop_on_the_folder_is_refused(tmp_path: Path, upstream: tuple[Store, LiveServer]) -> None:
    _, live = upstream
    proc = _start(tmp_path, live.url)
    try:
        _next_run(proc.stdout)
        other = _start(tmp_path, live.url, "--runs", "1")
        _, err = other.communicate(timeout=60)
        assert other.returncode == 1 and "already writing bundles" in err
    finally:
        proc.kill()
        proc.communicate()


def test_a_bundle_written_just_before_a_crash_is_not_repeated(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for name in ("bundle-00000000-00000004", "bundle-00000004-00000009"):
        (out / "done" / name).mkdir(parents=True)  # a watcher on the folder already moved them
    state = ScheduleState(last_serial=4, next_run=0.0, bundles=1)  # saved before the second bundle landed
    _recover(state, out)
    assert state.last_serial == 9 and state.bundles == 2


def test_intervals() -> None:
    assert parse_interval("1d") == 86400 and parse_interval("90s") == 90 and parse_interval("1.5h") == 5400
    for bad in ("soon", "0s", "-1d", "3w"):
        with pytest.raises(ReservoirError):
            parse_interval(bad)


@pytest.mark.e2e
def test_every_needs_a_bundle_folder(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("x\n")
    cmd = [sys.executable, "-m", "cove.reservoir", "sync", "-r", str(tmp_path / "r.txt"), "--python", "3.11"]
    cmd += ["--platform", "linux_x86_64", "--every", "1d", "--root", str(tmp_path / "root")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "--bundles" in done.stderr
