"""The reservoir's headline scenario: an image that needs numpy builds on a site with no route out.

The online side puts a real numpy wheel into a reservoir and exports a signed
bundle. A fresh Cove home, with an empty uv cache so nothing can come from a
previous build, trusts that site's key and imports the bundle into its own
reservoir. Then, inside a network namespace the test creates (only ``lo`` up,
no route anywhere), ``cove server --use-reservoir`` runs, ``cove deploy``
builds ``examples/hello/app.py:predict`` from the reservoir alone, and the
endpoint answers over HTTP inside the namespace. A package the reservoir does
not hold fails the deploy with uv's own resolver message.

The numpy wheel is the one registry download: it is fetched once with pip
into ``~/.cache/cove-test-wheels`` (``COVE_TEST_WHEELS`` overrides) and reused.
Creating the namespace needs root or CAP_NET_ADMIN and iproute2; without them
the test is skipped and says why.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

WHEELS = Path(os.environ.get("COVE_TEST_WHEELS", Path.home() / ".cache" / "cove-test-wheels"))
PORT = 8400  # the namespace is new and empty, so any port is free there
HELLO = ROOT / "examples" / "hello" / "app.py"

MISSING_APP = """\
from cove import Image, endpoint

image = Image(python_packages=["cove-nowhere-to-be-found"])


@endpoint(image=image)
def lost() -> dict:
    return {}
"""

DIRECT_URL_APP = """\
from cove import Image, endpoint

image = Image(python_packages=["numpy @ https://example.invalid/numpy.whl"])


@endpoint(image=image)
def direct() -> dict:
    return {}
"""


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def numpy_wheel() -> Path:
    """The numpy wheel for this interpreter and machine, downloaded once into the persistent cache."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    pattern = f"numpy-*-{tag}-{tag}-*manylinux*_{platform.machine()}.whl"
    found = sorted(WHEELS.glob(pattern))
    if found:
        return found[-1]
    WHEELS.mkdir(parents=True, exist_ok=True)
    venv = WHEELS / ".pip-venv"
    if not (venv / "bin" / "pip").exists():
        # ensurepip needs no network; the test venv itself has no pip.
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "download", "--disable-pip-version-check", "--no-deps"]
    done = _run([*pip, "--only-binary", ":all:", "-d", str(WHEELS), "numpy>=1.26"], timeout=600)
    found = sorted(WHEELS.glob(pattern))
    if done.returncode != 0 or not found:
        pytest.fail(f"could not download the numpy wheel into {WHEELS}:\n{done.stdout}\n{done.stderr}")
    return found[-1]


def _cove(*args: str, env: dict[str, str]) -> str:
    done = _run([sys.executable, "-m", "cove", *args], env=env)
    assert done.returncode == 0, f"cove {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _base_env() -> dict[str, str]:
    """The caller's environment without anything that points uv, pip or the CLI somewhere else."""
    drop = ("UV_", "PIP_", "COVE_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with only loopback up, removed afterwards even on failure."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed")
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    name = f"cove-build-{uuid.uuid4().hex[:8]}"
    made = _run(["ip", "netns", "add", name])
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace (needs root or CAP_NET_ADMIN): {made.stderr.strip()}")
    try:
        assert _run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"]).returncode == 0
        yield name
    finally:
        _run(["ip", "netns", "del", name])


class NetnsServer:
    """``cove server --use-reservoir`` started with ``ip netns exec``, and the CLI and curl run beside it."""

    def __init__(self, ns: str, home: Path, env: dict[str, str]) -> None:
        self.ns = ns
        self.home = home
        self.env = env
        self.url = f"http://127.0.0.1:{PORT}"
        self.log = home / "test-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    def start(self) -> None:
        cmd = [sys.executable, "-m", "cove", "server", "--use-reservoir", "--port", str(PORT), "--home", str(self.home)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, *cmd], env=self.env, stdout=out, stderr=out)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log.read_text()}")
            done = self.exec("curl", "-sf", "--max-time", "2", f"{self.url}/healthz")
            if done.returncode == 0 and json.loads(done.stdout).get("workers"):
                self.token = (self.home / "admin-token").read_text().strip()
                return
            time.sleep(0.2)
        raise AssertionError(f"server did not become healthy in the namespace:\n{self.log.read_text()}")

    def exec(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "COVE_TOKEN": self.token} if self.token else self.env
        return _run(["ip", "netns", "exec", self.ns, *cmd], env=env, timeout=timeout)

    def deploy(self, target: str) -> subprocess.CompletedProcess[str]:
        return self.exec(sys.executable, "-m", "cove", "deploy", target, "--json", timeout=600)

    def call(self, path: str, body: object) -> subprocess.CompletedProcess[str]:
        auth = f"Authorization: Bearer {self.token}"
        return self.exec("curl", "-s", "--max-time", "120", "-H", auth, "-d", json.dumps(body), f"{self.url}{path}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_fresh_home_imports_a_bundle_and_builds_numpy_with_no_route_out(netns: str, tmp_path: Path) -> None:
    wheel = numpy_wheel()
    env = _base_env()

    # Online side: a reservoir of its own holds numpy and exports a signed full bundle.
    online = tmp_path / "online"
    bundle = tmp_path / "bundle.tar"
    _cove("reservoir", "add", "--root", str(online), str(wheel), env=env)
    key = json.loads(_cove("reservoir", "key", "--root", str(online), "--json", env=env))
    _cove("reservoir", "export", "--root", str(online), "-o", str(bundle), env=env)

    # Closed side: a fresh home, an empty uv cache, and the bundle as the only way packages arrive.
    home = tmp_path / "home"
    uv_cache = tmp_path / "uv-cache"
    uv_cache.mkdir()
    closed = {
        **env,
        "COVE_HOME": str(home),
        "COVE_UV_CACHE_DIR": str(uv_cache),
        "XDG_CONFIG_HOME": str(home / "config"),
        "COVE_GATEWAY": f"http://127.0.0.1:{PORT}",
    }
    _cove("reservoir", "trust", key["public_key"], env=closed)
    imported = _cove("reservoir", "import", str(bundle), env=closed)
    assert "applied" in imported
    assert (home / "reservoir" / "reservoir.db").is_file()

    server = NetnsServer(netns, home, closed)
    try:
        # The namespace really is closed: no route, and loopback is its only interface.
        assert server.exec("ip", "route", "show").stdout.strip() == ""
        links = server.exec("ip", "-o", "link", "show").stdout.splitlines()
        assert [line.split(":")[1].strip() for line in links] == ["lo"]

        server.start()
        page = server.exec("curl", "-sf", f"{server.url}/reservoir/simple/numpy/")
        assert page.returncode == 0 and wheel.name in page.stdout

        deployed = server.deploy(f"{HELLO}:predict")
        assert deployed.returncode == 0, f"{deployed.stdout}\n{deployed.stderr}\n{server.log.read_text()[-4000:]}"
        result = json.loads(deployed.stdout)
        answer = server.call(f"/endpoint/{result['name']}", {"x": [1, 2, 4, 8]})
        assert answer.returncode == 0, answer.stderr
        stats = json.loads(answer.stdout)
        assert stats["n"] == 4
        assert stats["mean"] == pytest.approx(3.75)
        assert stats["slope"] == pytest.approx(2.3)
        assert stats["next"] == pytest.approx(9.5)
        assert stats["numpy"] == wheel.name.split("-")[1]
        built = list((home / "images").glob("*/cove-image.json"))
        assert built and any(f"numpy=={stats['numpy']}" in path.read_text() for path in built)

        # A package the reservoir does not hold: uv's own resolver message, not a timeout or a fetch elsewhere.
        missing_app = tmp_path / "missing" / "app.py"
        missing_app.parent.mkdir()
        missing_app.write_text(MISSING_APP)
        failed = server.deploy(f"{missing_app}:lost")
        assert failed.returncode != 0
        assert "cove-nowhere-to-be-found was not found in the package registry" in failed.stdout + failed.stderr

        # A requirement that points outside the reservoir is refused before any build starts.
        direct_app = tmp_path / "direct" / "app.py"
        direct_app.parent.mkdir()
        direct_app.write_text(DIRECT_URL_APP)
        refused = server.deploy(f"{direct_app}:direct")
        assert refused.returncode != 0
        assert "points outside the package reservoir" in refused.stdout + refused.stderr
    finally:
        server.stop()
