"""``cove server --reservoir-watch DIR``: a bundle dropped in DIR is imported into the server's own reservoir and
served under ``/reservoir/`` (here an R package, read back from ``/reservoir/cran/``)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest
from conftest import free_port

from cove.reservoir import keys, policy
from cove.reservoir.bundle import export_bundle
from cove.reservoir.cran import records
from cove.reservoir.store import Store

pytestmark = pytest.mark.e2e


def _r_package(path: Path) -> Path:
    data = b"Package: tiny\nVersion: 1.0\nLicense: MIT + file LICENSE\n"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("tiny/DESCRIPTION")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_server_imports_dropped_bundles(tmp_path: Path) -> None:
    online = Store(tmp_path / "online")
    records.add_package(online, _r_package(tmp_path / "tiny_1.0.tar.gz"), judge=policy.cran_reason)
    export_bundle(online, tmp_path / "staging" / "bundle-0001")
    home = tmp_path / "home"
    sealed = Store(home / "reservoir")
    keys.trust(sealed.layout, keys.public_key_file(online.layout))
    sealed.close()
    drop = tmp_path / "drop"
    drop.mkdir()

    port = free_port()
    env = {**os.environ, "COVE_HOME": str(home), "XDG_CONFIG_HOME": str(home / "config")}
    for name in ("COVE_TOKEN", "COVE_DATABASE_URL", "COVE_RESERVOIR_URL"):
        env.pop(name, None)
    argv = [sys.executable, "-m", "cove", "server", "--no-worker", "--port", str(port), "--home", str(home)]
    missing = subprocess.run(
        [*argv, "--reservoir-watch", str(tmp_path / "nope")], env=env, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 1 and "no such folder to watch" in " ".join(missing.stderr.split())
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([*argv, "--reservoir-watch", str(drop)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/reservoir/cran/src/contrib/PACKAGES"
    try:
        (tmp_path / "staging" / "bundle-0001").rename(drop / "bundle-0001")  # a complete bundle appears at once
        deadline = time.monotonic() + 60
        listed = ""
        while "Package: tiny" not in listed:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.5)
            try:
                listed = httpx.get(url, timeout=2).text
            except httpx.HTTPError:
                continue
        deadline = time.monotonic() + 10
        while not (drop / "done" / "bundle-0001.report.json").is_file():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert (drop / "done" / "bundle-0001").is_dir() and not (drop / "bundle-0001").exists()
        assert "reservoir watch" in (tmp_path / "server.log").read_text()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
