"""``cove reservoir gc``: leftovers of failed ingests go; anything the history names stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cove.reservoir.bundle import export_bundle
from cove.reservoir.errors import ReservoirConflict
from cove.reservoir.gc import collect
from cove.reservoir.store import Store

from .conftest import Wheelhouse


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_unreferenced_blobs_are_collected_after_the_grace_period(
    store: Store, wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    alpha = wheelhouse["alpha-1.0"]
    store.add_file(alpha, alpha.name, origin="test")
    store.add_file(wheelhouse["beta-1.0"], wheelhouse["beta-1.0"].name, origin="test")
    store.remove(wheelhouse["beta-1.0"].name)  # removed, but its file_added event still names the blob
    orphan_sha, orphan_size = store.blobs.put_bytes(b"bytes an ingest stored but never committed")
    fresh_sha, _ = store.blobs.put_bytes(b"an ingest still in flight")
    _age(store.blobs.path(orphan_sha), 7200)
    # A conflicting add stores nothing new under a name anyone uses.
    other = wheelhouse["beta-2.0"]
    clash = tmp_path / alpha.name
    clash.write_bytes(other.read_bytes())
    with pytest.raises(ReservoirConflict):
        store.add_file(clash, alpha.name, origin="test")

    dry = collect(store, dry_run=True)
    assert dry.deleted == [orphan_sha] and dry.bytes_freed == orphan_size and dry.too_recent >= 1
    assert store.blobs.has(orphan_sha)

    report = collect(store)
    assert report.blobs_deleted == 1 and not store.blobs.has(orphan_sha)
    assert store.blobs.has(fresh_sha)  # younger than the grace period: maybe an ingest about to commit
    for record in store.files():
        assert store.blobs.verify(record.sha256)
    # The whole history still exports: the removed file's blob was kept.
    export_bundle(store, tmp_path / "bundle")
    assert collect(store, grace=0).deleted == [fresh_sha]
    assert collect(store, grace=0).blobs_deleted == 0


def test_gc_command(store: Store, wheelhouse: Wheelhouse) -> None:
    sha, _ = store.blobs.put_bytes(b"stray")
    _age(store.blobs.path(sha), 7200)
    root = str(store.layout.root)
    cmd = [sys.executable, "-m", "cove.reservoir", "gc", "--root", root, "--json"]
    done = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["deleted"] == [sha] and store.blobs.has(sha)
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["blobs_deleted"] == 1 and not store.blobs.has(sha)
