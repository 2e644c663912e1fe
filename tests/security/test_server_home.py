"""One server per home, one worker per home, and no secret in a log file.

A second ``cove server`` on a home in use must fail at once and leave the
first one as it was; the admin token is shown on a terminal only; and two
servers with different homes on one database keep their local workers side
by side instead of taking each other's place forever.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import APPS, UV_CACHE, Server, free_port, start_server
from pg_cluster import PgCluster

from cove._host.home import Home, HomeInUse, HomeLock

WARM_APP = APPS / "warm" / "app.py"


def _cove(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the CLI; one that is still running after ``timeout`` (a second server that started) is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cove", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        raise AssertionError(f"`cove {' '.join(args)}` was still running after {timeout} s:\n{out}\n{err}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _running(server: Server, deployment: str) -> set[str]:
    return {c["id"] for c in server.containers(deployment) if c["state"] in ("listening", "ready")}


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[Server]:
    """A server with a warm container of its own."""
    server = start_server(tmp_path / "cove")
    try:
        server.deploy(f"{WARM_APP}:warm")
        server.wait_for(lambda: _running(server, "warm"), timeout=120)
        yield server
    finally:
        server.stop()


def test_a_second_server_on_a_home_in_use_fails_and_leaves_the_first_alone(busy: Server) -> None:
    info = (busy.home / "server.json").read_bytes()
    containers = _running(busy, "warm")
    pid, port = str(busy.proc.pid), busy.url.rsplit(":", 1)[1]
    home = str(busy.home)
    for extra in ([], ["--json"], ["--background"], ["--background", "--json"]):
        done = _cove(busy.env, "server", "--home", home, "--port", str(free_port()), *extra)
        said = done.stdout + done.stderr
        assert done.returncode != 0, said
        assert pid in said and port in said, said
        if "--json" in extra:
            assert pid in json.loads(done.stdout)["error"]

    assert busy.proc.poll() is None
    assert (busy.home / "server.json").read_bytes() == info
    assert _running(busy, "warm") == containers
    with busy.http() as http:
        assert http.post("/endpoint/warm", json={}).status_code == 200
    stop = subprocess.Popen(
        [sys.executable, "-m", "cove", "server", "--stop", "--home", home, "--json"],
        env=busy.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    busy.proc.wait(timeout=30)  # reaped here, so that `--stop` sees it gone (it is this test's child)
    out, _ = stop.communicate(timeout=30)
    assert json.loads(out) == {"stopped": True, "pid": busy.proc.pid}


def test_the_admin_token_never_reaches_a_log_file(tmp_path: Path) -> None:
    home, port = tmp_path / "cove", free_port()
    env = {**os.environ, "COVE_HOME": str(home), "COVE_UV_CACHE_DIR": str(UV_CACHE)}
    env.pop("COVE_TOKEN", None)
    started = _cove(env, "server", "--background", "--home", str(home), "--port", str(port), "--json", timeout=90)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        token = (home / "admin-token").read_text().strip()
        log = home / "server.log"
        assert token not in log.read_text() and token not in started.stdout + started.stderr
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
    finally:
        _cove(env, "server", "--stop", "--home", str(home))


def test_a_background_server_keeps_the_options_it_was_given(tmp_path: Path) -> None:
    """``--background`` starts a detached server with the same options, the local worker's size among them."""
    home, port = tmp_path / "cove", free_port()
    env = {**os.environ, "COVE_HOME": str(home), "COVE_UV_CACHE_DIR": str(UV_CACHE)}
    env.pop("COVE_TOKEN", None)
    args = ("--home", str(home), "--port", str(port), "--worker-cpu", "3", "--worker-memory", "5Gi")
    started = _cove(env, "server", "--background", *args, "--json", timeout=90)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        client = {
            **env,
            "COVE_GATEWAY": f"http://127.0.0.1:{port}",
            "COVE_TOKEN": (home / "admin-token").read_text().strip(),
        }
        deadline = time.monotonic() + 30
        while not (workers := json.loads(_cove(client, "worker", "list", "--json").stdout)):
            assert time.monotonic() < deadline, "the local worker never registered"
            time.sleep(0.2)
        assert [(w["name"], w["cpu_millis"], w["memory_mib"]) for w in workers] == [("local", 3000, 5120)]
    finally:
        _cove(env, "server", "--stop", "--home", str(home))
    refused = _cove(env, "server", "--home", str(home), "--worker-memory", "lots", "--json")
    assert refused.returncode != 0 and "--worker-memory" in json.loads(refused.stdout)["error"]


def test_a_foreground_server_writing_to_a_file_does_not_print_the_admin_token(tmp_path: Path) -> None:
    server = start_server(tmp_path / "cove")  # its output goes to test-server.log
    try:
        assert server.token not in (server.home / "test-server.log").read_text()
    finally:
        server.stop()


CLUSTER_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()  # a Fernet key


def _start(home: Path, database_url: str, admin_token: str | None) -> tuple[subprocess.Popen[bytes], str]:
    """``cove server`` with its local worker on the shared database, once it answers."""
    home.mkdir(parents=True)
    if admin_token is not None:  # the database already has its admin token: give this home a copy
        (home / "admin-token").write_text(admin_token + "\n")
        (home / "admin-token").chmod(0o600)
    port = free_port()
    env = {
        **os.environ,
        "COVE_HOME": str(home),
        "COVE_UV_CACHE_DIR": str(UV_CACHE),
        "COVE_DATABASE_URL": database_url,
        "COVE_SECRET_KEY": CLUSTER_KEY,  # gateways of one database share it (a home's own key is its alone)
    }
    env.pop("COVE_TOKEN", None)
    with (home / "test-server.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cove", "server", "--port", str(port), "--home", str(home)],
            env=env,
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (home / "test-server.log").read_text()
        assert time.monotonic() < deadline, "the server did not answer"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _local_workers(url: str, token: str) -> dict[str, dict[str, Any]]:
    reply = httpx.get(f"{url}/api/v1/workers", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert reply.status_code == 200, reply.text
    return {w["id"]: w for w in reply.json() if w["name"] == "local" and w["alive"]}


@pytest.mark.slow
def test_two_homes_on_one_database_keep_both_local_workers(tmp_path: Path, postgres: PgCluster) -> None:
    database_url = postgres.url(postgres.create_database())
    first, first_url = _start(tmp_path / "a", database_url, None)
    try:
        token = (tmp_path / "a" / "admin-token").read_text().strip()
        second, second_url = _start(tmp_path / "b", database_url, token)
        try:
            deadline = time.monotonic() + 60
            while len(workers := _local_workers(first_url, token)) < 2:
                assert time.monotonic() < deadline, f"both local workers never registered together: {workers}"
                time.sleep(0.5)
            time.sleep(8)  # several heartbeats: a worker that replaced the other would have shown by now
            assert _local_workers(first_url, token).keys() == workers.keys()
            assert _local_workers(second_url, token).keys() == workers.keys()
        finally:
            _stop(second)
    finally:
        _stop(first)


def test_worker_identity_is_per_home_and_kept(tmp_path: Path) -> None:
    first, second = Home(tmp_path / "a"), Home(tmp_path / "b")
    identity = first.worker_identity("local")
    assert first.worker_identity("local") == identity  # a restart is the same worker
    assert second.worker_identity("local") != identity  # the same name in another home is another worker
    assert stat.S_IMODE((first.worker_dir("local") / "worker-id").stat().st_mode) == 0o600


def test_cluster_gateways_share_a_home_and_every_other_server_holds_it_alone(tmp_path: Path) -> None:
    home = Home(tmp_path / "cove")
    gateways = [HomeLock(home), HomeLock(home)]
    for lock in gateways:
        lock.acquire(pid=1, port=8474, url="http://127.0.0.1:8474", shared=True)
    with pytest.raises(HomeInUse, match="pid 1, port 8474"):
        HomeLock(home).acquire(pid=2, port=8475, url="http://127.0.0.1:8475")
    for lock in gateways:
        lock.release()
    alone = HomeLock(home)
    alone.acquire(pid=3, port=8476, url="http://127.0.0.1:8476")
    assert HomeLock(home).held_by_another()
    with pytest.raises(HomeInUse, match="pid 3, port 8476"):
        HomeLock(home).acquire(pid=4, port=8477, url="http://127.0.0.1:8477", shared=True)
    alone.release()
    assert not HomeLock(home).held_by_another()
