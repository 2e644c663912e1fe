"""The headline scenario: pip and uv install from the reservoir inside a network namespace with no route out.

The test makes its own namespace (``ip netns add``, only ``lo`` up), starts
``cove reservoir serve`` on that namespace's loopback, and runs the clients
there with the reservoir as their only index and no user configuration. It
needs root (or CAP_NET_ADMIN) and iproute2, and is skipped with the reason
when either is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.reservoir.store import Store

from .conftest import client_env, uv_bin

PORT = 8470  # the namespace is new and empty, so the default port is free


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with only loopback up, removed afterwards."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed")
    name = f"cove-airgap-{uuid.uuid4().hex[:8]}"
    made = _ip("netns", "add", name)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace (needs root or CAP_NET_ADMIN): {made.stderr.strip()}")
    try:
        assert _ip("netns", "exec", name, "ip", "link", "set", "lo", "up").returncode == 0
        yield name
    finally:
        _ip("netns", "del", name)


def _in(ns: str, *cmd: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *cmd],
        capture_output=True,
        text=True,
        env=client_env(),
        timeout=120,
        **kwargs,
    )


def _serve(ns: str, root: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "cove.reservoir", "serve", "--root", str(root), "--port", str(PORT)]
    with log.open("wb") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=out, stderr=subprocess.STDOUT)
    probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{PORT}/health', timeout=1)"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"reservoir did not start: {log.read_text()}")
        if _in(ns, sys.executable, "-c", probe).returncode == 0:
            return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"reservoir did not answer in the namespace: {log.read_text()}")


def assert_closed(ns: str) -> None:
    """The namespace has only its loopback link and no route of either family: nothing but loopback is reachable.

    Read from the namespace's own tables; nothing is sent anywhere to show it.
    """
    links = _in(ns, "ip", "-o", "link", "show").stdout.splitlines()
    assert [line.split(":")[1].strip() for line in links] == ["lo"], links
    for family in ("-4", "-6"):
        assert _in(ns, "ip", family, "route", "show").stdout.strip() == "", family


def test_pip_and_uv_install_with_no_route_out(netns: str, filled: Store, pip_venv: Path, tmp_path: Path) -> None:
    assert_closed(netns)

    server = _serve(netns, filled.layout.root, tmp_path / "serve.log")
    index = f"http://127.0.0.1:{PORT}/simple/"
    try:
        pip = [str(pip_venv / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir", "--index-url", index]
        done = _in(netns, *pip, "--target", str(tmp_path / "pip"), "cove-demo-alpha")
        assert done.returncode == 0, done.stdout + done.stderr
        assert (tmp_path / "pip" / "cove_demo_alpha" / "__init__.py").is_file()
        assert "VERSION = '2.0'" in (tmp_path / "pip" / "cove_demo_beta" / "__init__.py").read_text()

        uv = [uv_bin(), "pip", "install", "--python", sys.executable, "--cache-dir", str(tmp_path / "uvcache")]
        uv += ["--index-url", index]
        done = _in(netns, *uv, "--target", str(tmp_path / "uv"), "cove-demo-alpha", "cove-demo-gamma")
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "uv" / "cove_demo_gamma" / "__init__.py").is_file()

        # A package the reservoir does not hold fails with the resolvers' own clear message.
        missing = _in(netns, *pip, "--target", str(tmp_path / "pip-missing"), "requests")
        assert missing.returncode != 0
        assert "No matching distribution found for requests" in missing.stdout + missing.stderr
        missing = _in(netns, *uv, "--target", str(tmp_path / "uv-missing"), "requests")
        assert missing.returncode != 0
        assert "requests was not found in the package registry" in missing.stderr
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
