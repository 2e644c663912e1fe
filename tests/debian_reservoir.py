"""A package reservoir holding a Debian suite, for the image tests that run apt and debootstrap.

The tests never reach a Debian mirror: they serve this reservoir on loopback
and build from it alone. Filling it is the one online step, done before the
tests as a setup step (``make test-data``, which ``.ci/run`` runs; or
``python tests/debian_reservoir.py``): ``sync-deb --base`` of what
debootstrap's minbase needs, python3 and the small packages the tests install.
It is kept in ``~/.cache/cove-test-reservoir-deb`` (``COVE_TEST_RESERVOIR_CACHE``
overrides); without it those tests skip and say how to make it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from conftest import free_port

RESERVOIR_CACHE = Path(os.environ.get("COVE_TEST_RESERVOIR_CACHE", Path.home() / ".cache" / "cove-test-reservoir-deb"))
SUITE = "bookworm"
PACKAGES = ("python3", "hello", "cowsay")  # what the image tests install, beside debootstrap's minbase
MARKER = ".cove-test-synced-v2"  # written last: a reservoir without it is incomplete


def missing() -> str | None:
    """Why the reservoir cannot be used (it was never filled), or None."""
    if (RESERVOIR_CACHE / MARKER).is_file():
        return None
    return f"no Debian reservoir at {RESERVOIR_CACHE}: make it once with `make test-data` (it syncs from a mirror)"


def prepare() -> Path:
    """Fill the reservoir from the Debian mirror (online), unless it already is; its folder."""
    if missing() is None:
        return RESERVOIR_CACHE
    RESERVOIR_CACHE.parent.mkdir(parents=True, exist_ok=True)
    staging = RESERVOIR_CACHE.with_name(f".{RESERVOIR_CACHE.name}.{uuid.uuid4().hex[:8]}")
    command = [sys.executable, "-m", "cove.reservoir", "sync-deb", "--suite", SUITE, "--base", *PACKAGES]
    done = subprocess.run([*command, "--root", str(staging), "--json"], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise SystemExit(f"sync-deb failed:\n{done.stderr or done.stdout}")
    (staging / MARKER).write_text(done.stdout)
    shutil.rmtree(RESERVOIR_CACHE, ignore_errors=True)
    staging.rename(RESERVOIR_CACHE)
    return RESERVOIR_CACHE


@contextlib.contextmanager
def serving(log: Path, root: Path = RESERVOIR_CACHE) -> Iterator[str]:
    """The reservoir at ``root`` (this one, unless a test names its own) served on loopback; its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "cove.reservoir", "serve", "--root", str(root), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the test reservoir did not start; see {log}") from None
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    print(f"Debian reservoir for the image tests: {prepare()}")
