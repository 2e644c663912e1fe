"""Shared fixtures: real ``cove server`` processes on free loopback ports; every test's kind.

Each test is of one kind, a marker that ``make test-unit``, ``make test-asgi`` and
``make test-e2e`` (and ``pytest -m KIND``) select by:

- ``unit``: runs in the pytest process: no server, no container, no socket, no
  build. It may run a short-lived command to completion that checks a fact (a
  fresh interpreter for what an import loads, mypy, ``dpkg --compare-versions``).
- ``asgi``: the gateway's app in this process, called through httpx's
  ``ASGITransport``: no server process, no socket.
- ``e2e``: real ``cove server`` and worker processes, containers (crun, runc or
  the process engine), a PostgreSQL cluster, environment builds, real sockets.

A test's kind is, first, a kind marker it carries itself (a decorator, its
module's ``pytestmark``, a parameter's marks); else ``e2e`` if it uses one of
``SERVER_FIXTURES``; else its folder's: ``tests/unit`` and ``tests/asgi`` say
theirs, and every other folder (``e2e``, ``security``; ``reservoir`` marks its
own) means ``e2e``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from pg_cluster import pg_url, postgres, store_url  # noqa: F401  (PostgreSQL fixtures for every module)

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
APPS = TESTS / "apps"
UV_CACHE = Path(os.environ.get("COVE_TEST_UV_CACHE", Path.home() / ".cache" / "cove-test-uv"))

KINDS = ("unit", "asgi", "e2e")
# The fixtures here that start a server (the database's included): a test that uses one is e2e wherever it lives.
SERVER_FIXTURES = frozenset({"server", "fresh_server", "sandbox", "postgres", "pg_url"})
FOLDER_KINDS = {"unit": "unit", "asgi": "asgi"}


def _kind_of(item: pytest.Item) -> str:
    carried = {mark.name for mark in item.iter_markers() if mark.name in KINDS}
    if len(carried) > 1:
        raise pytest.UsageError(f"{item.nodeid} is marked {' and '.join(sorted(carried))}: a test is of one kind")
    uses_a_server = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if carried:
        (kind,) = carried
        if kind != "e2e" and uses_a_server:
            raise pytest.UsageError(f"{item.nodeid} is marked {kind} but uses {', '.join(sorted(uses_a_server))}")
        return kind
    if uses_a_server:
        return "e2e"
    folder = item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else ""
    return FOLDER_KINDS.get(folder, "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each test its kind (see the module's documentation)."""
    for item in items:
        kind = _kind_of(item)
        if item.get_closest_marker(kind) is None:
            item.add_marker(kind)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class Server:
    """A running ``cove server`` and the means to talk to it as a user would."""

    url: str
    home: Path
    token: str
    proc: subprocess.Popen[bytes]
    env: dict[str, str]

    def cli(
        self, *args: str, check: bool = True, token: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "COVE_TOKEN": token or self.token}
        done = subprocess.run(
            [sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(f"cove {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def cli_json(self, *args: str, token: str | None = None) -> Any:
        return json.loads(self.cli(*args, "--json", token=token).stdout)

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def user_token(self, workspace: str, name: str = "member") -> str:
        """A new ``user`` token of ``workspace`` (made if missing), for tests that need a tenant of their own."""
        with self.http() as http:
            reply = http.post("/api/v1/tokens", json={"name": name, "workspace": workspace, "role": "user"})
            assert reply.status_code == 201, reply.text
            return str(reply.json()["token"])

    def deploy(self, target: str, *extra: str) -> dict[str, Any]:
        result: dict[str, Any] = self.cli_json("deploy", target, *extra)
        return result

    @contextlib.contextmanager
    def deployed_app(self, path: Path, functions: Iterable[str], module_name: str) -> Iterator[ModuleType]:
        """Deploy ``functions`` of the app at ``path``, then import it here as a user's laptop would,
        with the SDK pointed at this server; the import is forgotten on the way out."""
        for name in functions:
            self.deploy(f"{path}:{name}")
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("COVE_GATEWAY", self.url)
                patch.setenv("COVE_TOKEN", self.token)
                patch.setenv("COVE_HOME", str(self.home))
                yield module
        finally:
            sys.modules.pop(module_name, None)

    def containers(self, deployment: str | None = None, all_: bool = False) -> list[dict[str, Any]]:
        rows = self.cli_json("ps", *(["--all"] if all_ else []))
        return [r for r in rows if deployment is None or r["deployment"] == deployment]

    def wait_for(self, predicate: Any, timeout: float = 30, interval: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"condition not met within {timeout} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(
    home: Path, port: int | None = None, extra_env: dict[str, str] | None = None, *extra_args: str
) -> Server:
    port = port or free_port()
    env = {
        **os.environ,
        "COVE_HOME": str(home),
        "COVE_UV_CACHE_DIR": str(UV_CACHE),
        "XDG_CONFIG_HOME": str(home / "config"),
        "COVE_GATEWAY": f"http://127.0.0.1:{port}",
        **(extra_env or {}),
    }
    env.pop("COVE_TOKEN", None)
    home.mkdir(parents=True, exist_ok=True)
    with (home / "test-server.log").open("ab") as log:  # the server writes to its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "cove", "server", "--port", str(port), "--home", str(home), *extra_args],
            env=env,
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}:\n{(home / 'test-server.log').read_text()}")
        try:
            health = httpx.get(f"{url}/healthz", timeout=1).json()
            if health.get("workers"):
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"server did not become healthy:\n{(home / 'test-server.log').read_text()}")
    token = (home / "admin-token").read_text().strip()
    return Server(url=url, home=home, token=token, proc=proc, env=env)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by the tests that do not restart or break it."""
    # Many tests' containers stay warm side by side here: the worker offers room for all of them, so that
    # whether a test's container can be placed never depends on what earlier tests left running.
    # Callback tests post to receivers on loopback, which the server refuses unless allowed.
    srv = start_server(
        tmp_path_factory.mktemp("home") / "cove",
        None,
        None,
        "--worker-cpu",
        "64",
        "--callback-allow",
        "127.0.0.1/32",
    )
    yield srv
    srv.stop()


@pytest.fixture
def sandbox(server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A sandbox on the shared server, terminated after the test (it may have ended it already)."""
    from cove import Sandbox
    from cove.exceptions import ResponseError

    monkeypatch.setenv("COVE_GATEWAY", server.url)
    monkeypatch.setenv("COVE_TOKEN", server.token)
    sb = Sandbox(timeout=180).create()
    try:
        yield sb
    finally:
        with contextlib.suppress(ResponseError):
            sb.terminate()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, for tests that change global state."""
    srv = start_server(tmp_path / "cove")
    yield srv
    srv.stop()


@pytest.fixture
def app_copy(tmp_path: Path) -> Any:
    """Copy an app folder from tests/apps so a test may edit it."""

    def copy(name: str) -> Path:
        dest = tmp_path / "src" / name
        shutil.copytree(APPS / name, dest)
        return dest

    return copy
