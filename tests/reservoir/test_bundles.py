"""Export → import between two reservoir roots: full, delta, idempotent, resumable, and tampered copies."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import pytest

from cove.reservoir import keys
from cove.reservoir.bundle import export_bundle, import_bundle
from cove.reservoir.errors import BundleError
from cove.reservoir.server import create_app
from cove.reservoir.store import Store

from .conftest import LiveServer, Wheelhouse


@pytest.fixture
def pair(tmp_path: Path, wheelhouse: Wheelhouse) -> tuple[Store, Store]:
    """An online site with files and a closed site that trusts its key."""
    online = Store(tmp_path / "online")
    for key in ("alpha-1.0", "beta-1.0", "beta-2.0"):
        online.add_file(wheelhouse[key], wheelhouse[key].name, origin="test")
    online.yank(wheelhouse["beta-1.0"].name, "superseded")
    closed = Store(tmp_path / "closed")
    keys.trust(closed.layout, keys.public_key_file(online.layout))
    return online, closed


def _pages(store: Store) -> dict[str, tuple[bytes, bytes] | None]:
    return {name: store.page(name) for name, _ in store.projects()} | {"/": store.page("/")}


def test_key_is_private(pair: tuple[Store, Store]) -> None:
    online, _ = pair
    keys.signing_key(online.layout)
    assert stat.S_IMODE(online.layout.signing_key.stat().st_mode) == 0o600


def test_full_then_delta(pair: tuple[Store, Store], tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    online, closed = pair
    full = export_bundle(online, tmp_path / "full", chunk_size=1024)
    assert full["base_serial"] == 0 and full["target_serial"] == online.serial() == 4
    # Small chunks: the wheels span several chunk files.
    assert any(len(list(d.iterdir())) > 1 for d in (tmp_path / "full" / "blobs").iterdir())
    report = import_bundle(closed, tmp_path / "full")
    assert report.applied_events == 4 and report.blobs_stored == 6
    assert _pages(closed) == _pages(online)
    assert closed.get_file(wheelhouse["beta-1.0"].name).yank_reason == "superseded"  # type: ignore[union-attr]

    base = online.serial()
    online.add_file(wheelhouse["gamma-0.1"], wheelhouse["gamma-0.1"].name, origin="test")
    online.remove(wheelhouse["beta-1.0"].name)
    delta = export_bundle(online, tmp_path / "delta.tar", since=base)
    assert delta["events"] == 2 and delta["blobs"] == 2
    report = import_bundle(closed, tmp_path / "delta.tar")
    assert report.applied_events == 2
    assert {r.filename for r in closed.files()} == {r.filename for r in online.files()}
    assert _pages(closed) == _pages(online)

    # Twice: nothing changes.
    serial = closed.serial()
    again = import_bundle(closed, tmp_path / "delta.tar")
    assert again.already_imported and closed.serial() == serial
    again = import_bundle(closed, tmp_path / "full")
    assert again.already_imported and closed.serial() == serial


def test_gap_is_refused_unless_forced(pair: tuple[Store, Store], tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    online, closed = pair
    base = online.serial()
    online.add_file(wheelhouse["gamma-0.1"], wheelhouse["gamma-0.1"].name, origin="test")
    export_bundle(online, tmp_path / "delta", since=base)
    with pytest.raises(BundleError, match="only up to serial 0"):
        import_bundle(closed, tmp_path / "delta")
    assert closed.serial() == 0
    report = import_bundle(closed, tmp_path / "delta", force=True)
    assert report.applied_events == 1 and closed.get_file(wheelhouse["gamma-0.1"].name) is not None


def test_tampered_blob(pair: tuple[Store, Store], tmp_path: Path) -> None:
    online, closed = pair
    export_bundle(online, tmp_path / "b", chunk_size=4096)
    chunk = next((tmp_path / "b" / "blobs").rglob("000000"))
    data = bytearray(chunk.read_bytes())
    data[10] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="tampered"):
        import_bundle(closed, tmp_path / "b")
    assert closed.serial() == 0 and closed.files() == [] and closed.page("cove-demo-alpha") is None


def test_interrupted_import_resumes(pair: tuple[Store, Store], tmp_path: Path) -> None:
    online, closed = pair
    export_bundle(online, tmp_path / "b")
    chunks = sorted((tmp_path / "b" / "blobs").rglob("000000"))
    last = chunks[-1]
    saved = last.read_bytes()
    last.write_bytes(saved[: len(saved) // 2])  # a copy cut short, as on a full USB stick
    with pytest.raises(BundleError, match="wrong size"):
        import_bundle(closed, tmp_path / "b")
    assert closed.serial() == 0
    last.write_bytes(saved)
    report = import_bundle(closed, tmp_path / "b")
    assert report.blobs_present > 0 and report.applied_events == 4


def test_tampered_manifest(pair: tuple[Store, Store], tmp_path: Path) -> None:
    online, closed = pair
    export_bundle(online, tmp_path / "b")
    manifest = tmp_path / "b" / "manifest.json"
    doc = json.loads(manifest.read_bytes())
    doc["events"][0]["data"]["requires_python"] = ">=2.0"
    manifest.write_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    with pytest.raises(BundleError, match="signature does not verify"):
        import_bundle(closed, tmp_path / "b")
    assert closed.serial() == 0


def test_wrong_key(pair: tuple[Store, Store], tmp_path: Path) -> None:
    online, _ = pair
    stranger = Store(tmp_path / "stranger")  # trusts nobody
    export_bundle(online, tmp_path / "b")
    with pytest.raises(BundleError, match="does not trust"):
        import_bundle(stranger, tmp_path / "b")
    # A bundle re-signed by another site's key is refused too, even by a store that trusts that site.
    other = Store(tmp_path / "other")
    kid, sig = keys.sign(other.layout, (tmp_path / "b" / "manifest.json").read_bytes())
    keys.trust(stranger.layout, keys.public_key_file(other.layout))
    import base64

    (tmp_path / "b" / "manifest.sig").write_text(
        json.dumps({"key_id": kid, "algorithm": "ed25519", "signature": base64.b64encode(sig).decode()})
    )
    with pytest.raises(BundleError, match="another key"):
        import_bundle(stranger, tmp_path / "b")
    assert stranger.serial() == 0


def _tar_with(path: Path, source: Path, extra: tarfile.TarInfo, data: bytes = b"") -> None:
    with tarfile.open(path, "w") as tf:
        for f in sorted(source.rglob("*")):
            if f.is_file():
                tf.add(f, arcname=f.relative_to(source).as_posix())
        tf.addfile(extra, io.BytesIO(data) if data else None)


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink", "hardlink", "device", "unexpected"])
def test_hostile_tar_members(pair: tuple[Store, Store], tmp_path: Path, kind: str) -> None:
    online, closed = pair
    export_bundle(online, tmp_path / "b")
    member = tarfile.TarInfo(
        {
            "traversal": "../../evil",
            "absolute": "/tmp/evil",
            "symlink": "blobs/link",
            "hardlink": "manifest2",
            "device": "dev",
            "unexpected": "notes.txt",
        }[kind]
    )
    data = b""
    if kind == "symlink":
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        member.type, member.linkname = tarfile.LNKTYPE, "manifest.json"
    elif kind == "device":
        member.type = tarfile.CHRTYPE
    else:
        data = b"boom"
        member.size = len(data)
    _tar_with(tmp_path / "evil.tar", tmp_path / "b", member, data)
    with pytest.raises(BundleError):
        import_bundle(closed, tmp_path / "evil.tar")
    assert closed.serial() == 0 and not (tmp_path / "evil").exists()


def test_symlinked_chunk_in_folder(pair: tuple[Store, Store], tmp_path: Path) -> None:
    online, closed = pair
    export_bundle(online, tmp_path / "b")
    chunk = next((tmp_path / "b" / "blobs").rglob("000000"))
    shutil.copy(chunk, tmp_path / "outside")
    chunk.unlink()
    os.symlink(tmp_path / "outside", chunk)
    with pytest.raises(BundleError, match="symlink"):
        import_bundle(closed, tmp_path / "b")
    assert closed.serial() == 0


def test_clients_see_old_or_new_state(pair: tuple[Store, Store], tmp_path: Path) -> None:
    """While the import transaction is open, the server keeps serving the previous pages."""
    online, closed = pair
    export_bundle(online, tmp_path / "b")
    seen: list[int] = []
    with LiveServer(create_app(closed.layout.root)) as live:

        def probe(_event: object) -> None:
            seen.append(httpx.get(f"{live.url}/simple/cove-demo-alpha/").status_code)

        import_bundle(closed, tmp_path / "b", after_event=probe)
        assert seen and set(seen) == {404}
        assert httpx.get(f"{live.url}/simple/cove-demo-alpha/").status_code == 200


def test_cli_round_trip(pair: tuple[Store, Store], tmp_path: Path) -> None:
    online, _closed = pair

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cove.reservoir", *args], capture_output=True, text=True)

    out = cli(
        "export", "--root", str(online.layout.root), "-o", str(tmp_path / "cli.tar"), "--chunk-size", "8K", "--json"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["target_serial"] == 4
    other = tmp_path / "fresh"
    refused = cli("import", str(tmp_path / "cli.tar"), "--root", str(other))
    assert refused.returncode == 1 and "does not trust" in refused.stderr
    key = cli("key", "--root", str(online.layout.root), "--json")
    trusted = cli("trust", json.loads(key.stdout)["public_key"], "--root", str(other), "--json")
    assert trusted.returncode == 0, trusted.stderr
    done = cli("import", str(tmp_path / "cli.tar"), "--root", str(other), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["applied_events"] == 4
    listing = json.loads(cli("ls", "--root", str(other), "--json").stdout)
    assert {p["name"] for p in listing["projects"]} == {"cove-demo-alpha", "cove-demo-beta"}


def test_oversized_bundles_are_refused_before_anything_is_written(
    pair: tuple[Store, Store], tmp_path: Path, wheelhouse: Wheelhouse
) -> None:
    online, closed = pair
    export_bundle(online, tmp_path / "b.tar")
    export_bundle(online, tmp_path / "folder")
    before = closed.serial()
    total = sum(p.stat().st_size for p in (tmp_path / "folder" / "blobs").rglob("*") if p.is_file())
    limit = total // 2
    # The archive file itself, the sum of its members, and a folder's declared blobs are each held to the limit.
    with pytest.raises(BundleError, match="more than the limit"):
        import_bundle(closed, tmp_path / "b.tar", max_size=limit)
    with pytest.raises(BundleError, match="more than the limit"):
        import_bundle(closed, tmp_path / "folder", max_size=limit)
    assert closed.serial() == before and not any(closed.layout.tmp.iterdir())
    # Members adding up to more than the limit are refused before one byte is unpacked.
    big = tmp_path / "big.tar"
    with tarfile.open(big, "w") as tf:
        info = tarfile.TarInfo("blobs/" + "a" * 64 + "/000000")
        info.size = 4 * 1024 * 1024
        tf.addfile(info, io.BytesIO(b"\0" * info.size))
    with pytest.raises(BundleError, match=r"content of bundle archive big\.tar"):
        import_bundle(closed, big, max_size=info.size - 1)
    assert not any(closed.layout.tmp.iterdir())
    report = import_bundle(closed, tmp_path / "b.tar", max_size=total + 1024 * 1024)
    assert report.applied_events > 0
