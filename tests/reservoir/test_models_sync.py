"""``cove reservoir model sync``: a repository fetched over the Hub API from an upstream (a second reservoir here).

The upstream is a real reservoir served on loopback; the command runs as a
process, as an operator would run it, and the result is downloaded back with
the real ``huggingface_hub`` client.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.reservoir.errors import ReservoirError, ReservoirNotFound
from cove.reservoir.models import ingest, records
from cove.reservoir.models.sync import sync_model
from cove.reservoir.server import create_app
from cove.reservoir.store import Store

from .conftest import LiveServer
from .test_models import hub_client, make_repo


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[Store, LiveServer]]:
    """A second reservoir acting as the upstream hub."""
    store = Store(tmp_path / "upstream")
    with LiveServer(create_app(store.layout.root, store=store)) as live:
        yield store, live
    store.close()


def _sync(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cove.reservoir", "model", "sync", *args, "--root", str(root), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sync_fetches_a_revision_and_then_only_what_changed(
    upstream: tuple[Store, LiveServer], store: Store, served: LiveServer, tmp_path: Path
) -> None:
    up, live = upstream
    digests = make_repo(tmp_path / "v1", big=3 * 1024 * 1024)
    v1 = ingest.add_folder(up, "acme/tiny", tmp_path / "v1", revision="v1")
    make_repo(tmp_path / "v2", big=3 * 1024 * 1024, seed=b"b")
    for path in ("model.safetensors", "sub/extra.bin"):  # v2 changes only the small files
        (tmp_path / "v2" / path).write_bytes((tmp_path / "v1" / path).read_bytes())
    v2 = ingest.add_folder(up, "acme/tiny", tmp_path / "v2", revision="main")

    done = _sync(store.layout.root, "acme/tiny", "--revision", "v1", "--upstream", live.url)
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stdout)
    # Same content, same commit id on both sides; every file crossed the network once.
    assert first["commit"] == first["upstream_commit"] == v1.commit and first["revision"] == "v1"
    assert first["downloaded_files"] == 5 and first["license"] == "Apache-2.0" and first["status"] == "active"
    held = records.get_commit(store.conn, "acme/tiny", v1.commit)
    assert held is not None and held.origin == f"sync:{live.url}/acme/tiny@{v1.commit}"

    done = _sync(store.layout.root, "acme/tiny", "--upstream", live.url)  # main, the default revision
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout)
    assert second["commit"] == v2.commit
    changed = {"config.json", "tokenizer.json"}
    assert second["downloaded_files"] == len(changed)
    assert second["downloaded_bytes"] == sum((tmp_path / "v2" / p).stat().st_size for p in changed)

    again = _sync(store.layout.root, "acme/tiny", "--upstream", live.url)
    assert json.loads(again.stdout)["downloaded_files"] == 0 and not json.loads(again.stdout)["added"]

    got = hub_client(
        served.url,
        tmp_path / "hf",
        ("snapshot", {"key": "v1", "repo": "acme/tiny", "revision": "v1"}),
        ("snapshot", {"key": "main", "repo": "acme/tiny"}),
    )
    assert got["v1"]["files"] == digests
    assert (
        got["main"]["files"]["config.json"]
        == hashlib.sha256((tmp_path / "v2" / "config.json").read_bytes()).hexdigest()
    )

    pinned = _sync(store.layout.root, "acme/tiny", "--revision", v1.commit, "--upstream", live.url)
    assert pinned.returncode != 0 and "--as NAME" in pinned.stderr
    pinned = _sync(store.layout.root, "acme/tiny", "--revision", v1.commit, "--as", "pinned", "--upstream", live.url)
    assert pinned.returncode == 0 and json.loads(pinned.stdout)["commit"] == v1.commit
    assert records.resolve(store.conn, "acme/tiny", "pinned") == v1.commit


def test_sync_refuses_what_does_not_match_and_names_what_is_missing(
    upstream: tuple[Store, LiveServer], store: Store, tmp_path: Path
) -> None:
    up, live = upstream
    make_repo(tmp_path / "m", big=2 * 1024 * 1024)
    added = ingest.add_folder(up, "acme/tiny", tmp_path / "m")
    with pytest.raises(ReservoirNotFound, match="has no acme/missing@main"):
        sync_model(store, "acme/missing", revision="main", upstream=live.url)
    with pytest.raises(ReservoirNotFound, match="has no acme/tiny@v9"):
        sync_model(store, "acme/tiny", revision="v9", upstream=live.url)
    with pytest.raises(ReservoirError, match="cannot reach the upstream hub"):
        sync_model(store, "acme/tiny", revision="main", upstream="http://127.0.0.1:9")

    # The upstream serves a large file whose bytes no longer match the sha256 it lists: refused, nothing recorded.
    held = records.get_commit(up.conn, "acme/tiny", added.commit)
    assert held is not None
    big = held.file("model.safetensors")
    assert big is not None
    victim = up.blobs.path(big.sha256)
    victim.chmod(0o644)
    with victim.open("r+b") as fh:
        fh.write(b"tampered")
    with pytest.raises(ReservoirError, match=r"model\.safetensors from .* refused: sha256 mismatch"):
        sync_model(store, "acme/tiny", revision="main", upstream=live.url)
    assert records.refs(store.conn) == []
    assert not store.blobs.has(big.sha256)
