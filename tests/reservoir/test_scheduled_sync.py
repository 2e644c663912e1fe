"""``sync --every``: one bundle per run with only what changed, against a local upstream, across restarts.

The upstream is a second reservoir on loopback: its simple index for the
requirement set, and its signed apt repository (packages built here with
``dpkg-deb``) for the Debian suites. Nothing goes to the internet.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from cove.reservoir import keys, policy
from cove.reservoir.bundle import import_bundle
from cove.reservoir.debian import gpg, publish, records
from cove.reservoir.errors import ReservoirError
from cove.reservoir.scheduled import (
    STATE_NAME,
    DebianSource,
    ScheduleConfig,
    ScheduledSync,
    ScheduleState,
    _recover,
    parse_deb,
    parse_interval,
    targets_of,
)
from cove.reservoir.server import create_app
from cove.reservoir.store import Store

from .conftest import LiveServer, Wheelhouse
from .debs import build_deb

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


def _manifest(entry: dict[str, Any]) -> list[str]:
    return [e["filename"] for e in json.loads((Path(entry["bundle"]) / "manifest.json").read_text())["events"]]


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
        assert _manifest(second) == [wheelhouse["beta-2.0"].name]
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


# -- Debian suites ------------------------------------------------------------------------------------------------

SUITE = "bookworm"


@pytest.fixture
def deb_upstream(tmp_path: Path, wheelhouse: Wheelhouse) -> Iterator[tuple[Store, LiveServer, Path]]:
    """An upstream with a requirement set and a signed apt suite: cove-tool 1.0-1, which needs libcove-demo1."""
    for tool in ("apt-get", "dpkg-deb", "gpg"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (the Debian part of a scheduled sync runs apt and gpg)")
    store = Store(tmp_path / "upstream")
    for key in ("alpha-1.0", "beta-1.0"):
        store.add_file(wheelhouse[key], wheelhouse[key].name, origin="test")
    work = tmp_path / "debs"
    work.mkdir()
    for deb in (
        build_deb(work, "libcove-demo1", "1.2-3"),
        build_deb(work, "cove-tool", "1.0-1", depends="libcove-demo1 (>= 1.2)"),
        build_deb(work, "cove-unwanted", "0.1-1"),  # in the suite, but nobody asks for it
    ):
        records.add_deb(store, deb, SUITE, judge=policy.deb_reason, origin="test")
    publish.publish(store, SUITE)
    with LiveServer(create_app(store.layout.root, store=store)) as live:
        yield store, live, work
    store.close()


def _start_deb(tmp_path: Path, up: Store, url: str, *extra: str) -> subprocess.Popen[str]:
    """A schedule of Debian suites only: no -r, --python or --platform."""
    cmd = [sys.executable, "-m", "cove.reservoir", "sync", "--every", "5s", "--bundles", str(tmp_path / "out")]
    cmd += ["--deb-mirror", f"{url}/debian", "--deb-keyring", str(gpg.public_keyring(up.layout))]
    cmd += ["--root", str(tmp_path / "local"), "--json", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _held(store: Store) -> set[str]:
    return {r.filename for r in records.listing(store.conn, SUITE)}


def test_a_bundle_per_run_of_a_debian_suite(tmp_path: Path, deb_upstream: tuple[Store, LiveServer, Path]) -> None:
    up, live, work = deb_upstream
    proc = _start_deb(tmp_path, up, live.url, "--deb", f"{SUITE}:cove-tool")
    try:
        first = _next_run(proc.stdout)
        assert first["event"] == "run", first
        assert first["sync"] is None and first["debian"] == [{"suite": SUITE, "added": 2, "present": 0}]
        assert sorted(_manifest(first)) == ["cove-tool_1.0-1_all.deb", "libcove-demo1_1.2-3_all.deb"]
        newer = build_deb(work, "cove-tool", "1.1-1", depends="libcove-demo1 (>= 1.2)")
        records.add_deb(up, newer, SUITE, judge=policy.deb_reason, origin="test")
        publish.publish(up, SUITE)
        second = _next_run(proc.stdout)
        assert second["event"] == "run" and second["base_serial"] == first["serial"], second
        assert second["debian"] == [{"suite": SUITE, "added": 1, "present": 1}]
        assert _manifest(second) == ["cove-tool_1.1-1_all.deb"]  # only the new package
    finally:
        proc.kill()
        proc.communicate()
    assert _bundles(tmp_path) == [Path(first["bundle"]).name, Path(second["bundle"]).name]

    # The bundles carry the suite to a sealed site.
    local = Store(tmp_path / "local")
    sealed = Store(tmp_path / "sealed")
    keys.trust(sealed.layout, keys.public_key_file(local.layout))
    for name in _bundles(tmp_path):
        import_bundle(sealed, tmp_path / "out" / name)
    assert (
        _held(sealed)
        == _held(local)
        == {
            "libcove-demo1_1.2-3_all.deb",
            "cove-tool_1.0-1_all.deb",
            "cove-tool_1.1-1_all.deb",
        }
    )
    local.close()
    sealed.close()


def test_a_failed_part_fails_the_run(tmp_path: Path, deb_upstream: tuple[Store, LiveServer, Path]) -> None:
    """The requirement set, then each suite; one that fails fails the run, and the next run bundles it all."""
    up, live, _ = deb_upstream
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("cove-demo-alpha\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/debian"  # nothing listens there
    keyring = str(gpg.public_keyring(up.layout))
    good = DebianSource(SUITE, ("cove-tool",), mirror=f"{live.url}/debian", keyring=keyring)
    config = ScheduleConfig(
        output=tmp_path / "out",
        every=3600,
        index_url=f"{live.url}/simple/",
        requirements=reqs,
        targets=targets_of(["3.11"], ["manylinux_2_28_x86_64"]),
        debian=(good, DebianSource("trixie", ("cove-tool",), mirror=closed, keyring=keyring)),
    )
    local = Store(tmp_path / "local")
    schedule = ScheduledSync(local, config)
    with schedule.locked() as state:
        failed = schedule.run_once(state)
        assert failed["event"] == "failed" and failed["part"] == "debian trixie", failed
        assert failed["error"].startswith("apt-get")  # apt finds no cove-tool where nothing answers
        assert failed["sync"]["added"] == 2 and failed["debian"] == [{"suite": SUITE, "added": 2, "present": 0}]
        assert "bundle" not in failed and state.last_serial == 0
        fixed = ScheduledSync(local, dataclasses.replace(config, debian=(good,))).run_once(state)
    assert fixed["event"] == "run" and "part" not in fixed and fixed["base_serial"] == 0, fixed
    assert fixed["sync"]["added"] == 0 and fixed["debian"] == [{"suite": SUITE, "added": 0, "present": 2}]
    assert len(_manifest(fixed)) == 4  # what the failed run fetched comes in this run's bundle
    local.close()


def test_a_schedule_needs_something_to_sync(tmp_path: Path) -> None:
    with pytest.raises(ReservoirError, match="needs a requirement set"):
        ScheduleConfig(output=tmp_path, every=60, index_url="http://127.0.0.1:9/simple/")
    with pytest.raises(ReservoirError, match="at least one target"):
        ScheduleConfig(output=tmp_path, every=60, index_url="x", requirements=tmp_path / "r.txt")
    source = DebianSource(SUITE, ("curl",))
    assert ScheduleConfig(output=tmp_path, every=60, index_url="x", debian=(source,)).requirements is None
    assert source.mirror.startswith("http") and source.components == ("main",) and not source.base


def test_deb_values() -> None:
    assert parse_deb("bookworm:python3,curl") == DebianSource("bookworm", ("python3", "curl"))
    assert parse_deb("bookworm:", base=True).packages == ()  # with --deb-base: the base set alone
    for bad, says in (
        ("bookworm", "write SUITE:PACKAGE"),
        ("bookworm:", "names no package"),
        ("bookworm: , ", "names no package"),
        ("Bookworm:curl", "invalid Debian suite name 'Bookworm'"),
        (":curl", "invalid Debian suite name ''"),
        ("bookworm:curl,-o", "invalid Debian package name '-o'"),
        ("bookworm:curl,,git", "invalid Debian package name ''"),
    ):
        with pytest.raises(ReservoirError) as caught:
            parse_deb(bad)
        assert caught.value.message.startswith(f"--deb {bad!r}") and says in caught.value.message
    with pytest.raises(ReservoirError, match="invalid Debian mirror"):
        parse_deb("bookworm:curl", mirror="http://x bookworm main")


def test_deb_on_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cove.reservoir.cli import _debian_sources, app

    root = tmp_path / "root"
    every = ["--every", "1h", "--bundles", str(tmp_path / "out"), "--root", str(root)]

    def error(*args: str) -> str:
        done = CliRunner().invoke(app, ["sync", *args])
        assert done.exit_code == 1, done.output
        return " ".join(done.output.split())  # Rich wraps lines

    assert "--deb syncs Debian suites on a schedule: give it with --every" in error("--deb", "bookworm:curl")
    assert "--deb 'bookworm': write SUITE:PACKAGE" in error("--deb", "bookworm", *every)
    assert "--deb 'bookworm:' names no package" in error("--deb", "bookworm:", *every)
    assert "invalid Debian package name 'Curl'" in error("--deb", "bookworm:Curl", *every)
    assert "--deb-base: only together with --deb" in error("--deb-base", *every)
    assert "--deb-keyring" in error("--deb", "bookworm:curl", "--deb-keyring", str(tmp_path / "none.gpg"), *every)
    # Without --deb the requirement set is needed, with or without --every.
    assert "missing option -r/--requirements" in error("--python", "3.11", "--platform", "any")
    assert "missing option -r/--requirements" in error(*every)
    half = ["--deb", "bookworm:curl", "-r", str(tmp_path / "r.txt"), "--python", "3.11"]
    assert "missing option --platform" in error(*half, *every)  # -r goes with --python and --platform
    assert not root.exists() and not (tmp_path / "out").exists()  # refused before anything ran
    # A suite named twice is synced once, with the packages of both.
    merged = _debian_sources(["bookworm:curl", "trixie:git", "bookworm:python3,curl"], None, None, ["main"], False)
    assert [(s.suite, s.packages) for s in merged] == [("bookworm", ("curl", "python3")), ("trixie", ("git",))]
