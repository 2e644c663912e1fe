"""Watch-folder import: real bundles dropped out of order, copied in slowly, tampered, and a restart midway."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cove.reservoir import keys
from cove.reservoir.bundle import export_bundle
from cove.reservoir.errors import ReservoirError
from cove.reservoir.store import Store
from cove.reservoir.watch import WatchConfig, Watcher

from .conftest import Wheelhouse


@pytest.fixture
def sites(tmp_path: Path, wheelhouse: Wheelhouse) -> tuple[Store, Store, list[Path]]:
    """An online site that exported three successive bundles, and a sealed site that trusts it."""
    online = Store(tmp_path / "online")
    out = tmp_path / "exports"
    out.mkdir()
    bundles = []
    since = 0
    for n, keys_ in enumerate((("alpha-1.0", "beta-1.0"), ("beta-2.0",), ("gamma-0.1",)), 1):
        for key in keys_:
            online.add_file(wheelhouse[key], wheelhouse[key].name, origin="test")
        path = out / (f"bundle-{n}.tar" if n == 2 else f"bundle-{n}")
        export_bundle(online, path, since=since, chunk_size=4096)
        since = online.serial()
        bundles.append(path)
    sealed = Store(tmp_path / "sealed")
    keys.trust(sealed.layout, keys.public_key_file(online.layout))
    return online, sealed, bundles


def _watcher(store: Store, folder: Path, **kw: object) -> Watcher:
    return Watcher(store, WatchConfig(folder, settle=5.0, **kw))  # type: ignore[arg-type]


def _report(folder: Path, where: str, name: str) -> dict[str, object]:
    return dict(json.loads((folder / where / f"{name}.report.json").read_text()))


def test_out_of_order_slow_and_tampered(
    sites: tuple[Store, Store, list[Path]], tmp_path: Path, wheelhouse: Wheelhouse
) -> None:
    _, sealed, (b1, b2, b3) = sites
    drop = tmp_path / "drop"
    drop.mkdir()
    logged: list[dict[str, object]] = []
    watcher = Watcher(sealed, WatchConfig(drop, settle=5.0), log=logged.append)
    with watcher.locked():
        # The third bundle arrives first, tampered: one byte of a chunk flipped (sizes unchanged).
        shutil.copytree(b3, drop / b3.name)
        chunk = next((drop / b3.name / "blobs").rglob("000000"))
        data = bytearray(chunk.read_bytes())
        data[100] ^= 0xFF
        chunk.write_bytes(bytes(data))
        shutil.copy(b2, drop / b2.name)
        assert watcher.scan(now=0) == []
        assert watcher.scan(now=10) == []  # both wait: their serials do not follow what this site holds
        waiting = watcher.waiting()
        assert "serials 1..2 of site" in waiting[b2.name] and "are missing" in waiting[b2.name]
        assert "serials 1..3 of site" in waiting[b3.name]
        assert sealed.serial() == 0

        # The first bundle is copied in slow pieces: manifest first, chunks later, the last one half-written.
        target = drop / b1.name
        target.mkdir()
        shutil.copy(b1 / "manifest.json", target / "manifest.json")
        shutil.copy(b1 / "manifest.sig", target / "manifest.sig")
        chunks = sorted(p for p in (b1 / "blobs").rglob("*") if p.is_file())
        now = 20.0
        for path in chunks:
            dest = target / path.relative_to(b1)
            dest.parent.mkdir(parents=True, exist_ok=True)
            content = path.read_bytes()
            dest.write_bytes(content[: len(content) // 2])
            for _ in range(2):  # long pauses: the half-written chunk is never read
                now += 10
                assert watcher.scan(now=now) == []
            dest.write_bytes(content)
        assert sealed.serial() == 0 and "not there yet" in " ".join(str(e.get("message")) for e in logged)
        assert (target).exists()

        # Once whole and settled, the first two apply in order and the tampered third is refused.
        outcomes = watcher.scan(now=now + 1) + watcher.scan(now=now + 10)
    assert [(o["bundle"], o["status"]) for o in outcomes] == [
        (b1.name, "applied"),
        (b2.name, "applied"),
        (b3.name, "refused"),
    ]
    assert sealed.serial() == 3
    assert sealed.get_file(wheelhouse["gamma-0.1"].name) is None  # nothing of the tampered bundle
    assert {f.filename for f in sealed.files()} == {wheelhouse[k].name for k in ("alpha-1.0", "beta-1.0", "beta-2.0")}
    assert sorted(p.name for p in (drop / "done").iterdir()) == sorted(
        [b1.name, f"{b1.name}.report.json", b2.name, f"{b2.name}.report.json"]
    )
    first = _report(drop, "done", b1.name)
    assert first["changes"]["file_added"] == [wheelhouse["alpha-1.0"].name, wheelhouse["beta-1.0"].name]  # type: ignore[index]
    failed = _report(drop, "failed", b3.name)
    assert failed["status"] == "refused" and "tampered" in str(failed["error"])
    assert (drop / "failed" / b3.name / "manifest.json").is_file()
    assert not [p for p in drop.iterdir() if p.name not in ("done", "failed", ".cove-watch.lock")]


def test_restart_resumes(sites: tuple[Store, Store, list[Path]], tmp_path: Path) -> None:
    """A watcher stopped after the first bundle; a new one (a restart) applies the rest, and a bundle
    applied just before a crash but never moved is recognised as already imported."""
    _, sealed, (b1, b2, b3) = sites
    drop = tmp_path / "drop"
    drop.mkdir()
    shutil.copytree(b1, drop / b1.name)
    first = _watcher(sealed, drop)
    first.scan(now=0)
    assert [o["status"] for o in first.scan(now=6)] == ["applied"]
    # Crash between commit and move: simulate by applying b2 directly and leaving it in the folder.
    from cove.reservoir.bundle import import_bundle

    import_bundle(sealed, b2)
    shutil.copy(b2, drop / b2.name)
    shutil.copytree(b3, drop / b3.name)
    sealed.close()

    reopened = Store(sealed.layout.root)
    second = _watcher(reopened, drop)
    second.scan(now=100)
    outcomes = second.scan(now=106)
    assert [(o["bundle"], o["status"]) for o in outcomes] == [(b2.name, "already imported"), (b3.name, "applied")]
    assert reopened.serial() == 4


def test_untrusted_and_garbage_go_to_failed(sites: tuple[Store, Store, list[Path]], tmp_path: Path) -> None:
    _, _, (b1, _, _) = sites
    stranger = Store(tmp_path / "stranger")  # trusts nobody
    drop = tmp_path / "drop"
    drop.mkdir()
    shutil.copytree(b1, drop / b1.name)
    (drop / "junk.tar").write_bytes(b"this is not a tar archive at all" * 40)
    watcher = _watcher(stranger, drop)
    outcomes = watcher.scan(now=0) + watcher.scan(now=6)
    reasons = {o["bundle"]: str(o["error"]) for o in outcomes}
    assert "does not trust" in reasons[b1.name]
    assert "junk.tar" in reasons
    assert stranger.serial() == 0
    assert (drop / "failed" / f"{b1.name}.report.json").is_file()


def test_partial_tar_waits(sites: tuple[Store, Store, list[Path]], tmp_path: Path) -> None:
    _, sealed, _ = sites
    tar = tmp_path / "full.tar"
    export_bundle(Store(tmp_path / "online"), tar, since=0)
    drop = tmp_path / "drop"
    drop.mkdir()
    data = tar.read_bytes()
    part = drop / "bundle.tar"
    part.write_bytes(data[: len(data) * 2 // 3])
    watcher = _watcher(sealed, drop)
    assert watcher.scan(now=0) == [] and watcher.scan(now=60) == []
    assert "not complete" in watcher.waiting()["bundle.tar"] or "waiting for" in watcher.waiting()["bundle.tar"]
    with part.open("ab") as fh:
        fh.write(data[len(data) * 2 // 3 :])
    assert watcher.scan(now=61) == []  # changed: settles first
    assert [o["status"] for o in watcher.scan(now=70)] == ["applied"]
    assert sealed.serial() > 0


def test_one_watcher_per_folder(sites: tuple[Store, Store, list[Path]], tmp_path: Path) -> None:
    _, sealed, _ = sites
    drop = tmp_path / "drop"
    drop.mkdir()
    with (
        _watcher(sealed, drop).locked(),
        pytest.raises(ReservoirError, match="another watcher"),
        _watcher(sealed, drop).locked(),
    ):
        pass


def test_cli_watch_process(sites: tuple[Store, Store, list[Path]], tmp_path: Path) -> None:
    """`cove reservoir watch` as its own process, stopped and started again."""
    _, sealed, (b1, b2, _) = sites
    root = sealed.layout.root
    sealed.close()
    drop = tmp_path / "drop"
    drop.mkdir()
    cmd = [sys.executable, "-m", "cove.reservoir", "watch", str(drop), "--root", str(root), "--json"]
    shutil.copy(b2, drop / b2.name)
    with subprocess.Popen([*cmd, "--interval", "0.2", "--settle", "0.5"], stdout=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 30
            assert proc.stdout is not None
            line = json.loads(proc.stdout.readline())
            while line["event"] != "waiting" and time.monotonic() < deadline:
                line = json.loads(proc.stdout.readline())
            assert "serials 1..2" in line["message"]
        finally:
            proc.terminate()
            proc.wait(10)
    shutil.copytree(b1, drop / b1.name)
    done = subprocess.run([*cmd, "--once", "--settle", "0.5"], capture_output=True, text=True, check=True)
    events = [json.loads(x) for x in done.stdout.splitlines()]
    assert [(e["bundle"], e["status"]) for e in events if e["event"] == "done"] == [
        (b1.name, "applied"),
        (b2.name, "applied"),
    ]
