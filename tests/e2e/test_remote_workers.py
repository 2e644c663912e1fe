"""Several hosts on one machine: a gateway and two workers, each in a network namespace of its own.

The test builds the network itself (namespaces and veth pairs on a private
/24 it checks is unused) and removes it afterwards; all traffic stays inside
those namespaces, plus one veth from the test to the gateway's namespace.
Each worker has its own Cove home, so images really travel over HTTP, and
containers listen on TCP ports of their worker's address. Then one worker is
SIGKILLed with its containers (a host dying) while requests and tasks flow:
its containers come back on the other worker and every task ends COMPLETE
exactly once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import APPS, UV_CACHE, Server

APP = APPS / "workerops" / "app.py"
PORT = 8474

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nsenter"), reason="needs root"),
]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclasses.dataclass
class Net:
    """Namespaces ``gw``, ``a`` and ``b``; ``a`` and ``b`` each reach ``gw`` over their own veth pair."""

    tag: str
    prefix: str  # "10.X.Y."

    def ns(self, role: str) -> str:
        return f"cove-{self.tag}-{role}"

    def addr(self, host: int) -> str:
        return f"{self.prefix}{host}"

    # /30 links: gw<->a (.1/.2), gw<->b (.5/.6), test<->gw (.9/.10)
    @property
    def gateway_for_a(self) -> str:
        return self.addr(1)

    @property
    def a(self) -> str:
        return self.addr(2)

    @property
    def gateway_for_b(self) -> str:
        return self.addr(5)

    @property
    def b(self) -> str:
        return self.addr(6)

    @property
    def gateway_for_test(self) -> str:
        return self.addr(10)

    def run_in(self, role: str) -> list[str]:
        # nsenter changes only the network namespace (``ip netns exec`` would remount /sys and
        # hide the cgroup hierarchy the container engine needs).
        return ["nsenter", f"--net=/run/netns/{self.ns(role)}", "--"]


def _unused_prefix() -> str:
    used = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True, check=True).stdout
    for _ in range(50):
        prefix = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}."
        if prefix not in used:
            return prefix
    raise RuntimeError("no unused 10.x.y.0/24 found")


@contextlib.contextmanager
def _network() -> Iterator[Net]:
    net = Net(tag=f"{os.getpid() % 100000}", prefix=_unused_prefix())
    veths = {"a": (f"cv{net.tag}ga", f"cv{net.tag}a"), "b": (f"cv{net.tag}gb", f"cv{net.tag}b")}
    test_end, gw_end = f"cv{net.tag}t", f"cv{net.tag}gt"
    try:
        for role in ("gw", "a", "b"):
            _ip("netns", "add", net.ns(role))
            _ip("-n", net.ns(role), "link", "set", "lo", "up")
        for role, (gw_side, far_side), gw_host, far_host in (
            ("a", veths["a"], 1, 2),
            ("b", veths["b"], 5, 6),
        ):
            _ip("link", "add", gw_side, "netns", net.ns("gw"), "type", "veth", "peer", far_side, "netns", net.ns(role))
            _ip("-n", net.ns("gw"), "addr", "add", f"{net.addr(gw_host)}/30", "dev", gw_side)
            _ip("-n", net.ns(role), "addr", "add", f"{net.addr(far_host)}/30", "dev", far_side)
            _ip("-n", net.ns("gw"), "link", "set", gw_side, "up")
            _ip("-n", net.ns(role), "link", "set", far_side, "up")
        _ip("link", "add", test_end, "type", "veth", "peer", gw_end, "netns", net.ns("gw"))
        _ip("addr", "add", f"{net.addr(9)}/30", "dev", test_end)
        _ip("-n", net.ns("gw"), "addr", "add", f"{net.addr(10)}/30", "dev", gw_end)
        _ip("link", "set", test_end, "up")
        _ip("-n", net.ns("gw"), "link", "set", gw_end, "up")
        yield net
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", test_end)
        for role in ("gw", "a", "b"):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", net.ns(role))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _runner_pids(container_ids: set[str]) -> list[int]:
    marks = {f"COVE_CONTAINER_ID={cid}".encode() for cid in container_ids}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            environ = (entry / "environ").read_bytes().split(b"\0")
            if any(mark in environ for mark in marks):
                found.append(int(entry.name))
    return found


def _task_rows(home: Path) -> list[tuple[str, str, bytes | None]]:
    with sqlite3.connect(f"file:{home / 'cove.db'}?mode=ro", uri=True, timeout=30) as db:
        return db.execute("SELECT id, state, result FROM tasks WHERE name = 'square'").fetchall()


def test_two_hosts_spread_images_over_http_and_survive_a_killed_worker(tmp_path: Path) -> None:
    with _network() as net:
        _run_cluster(net, tmp_path)


def start_gateway(net: Net, tmp_path: Path) -> Server:
    """``cove server --no-worker`` inside the gateway's namespace with a home of its own, once healthy."""
    home = tmp_path / "gateway"
    home.mkdir()
    url = f"http://{net.gateway_for_test}:{PORT}"
    env = {
        **os.environ,
        "COVE_HOME": str(home),
        "COVE_UV_CACHE_DIR": str(UV_CACHE),
        "XDG_CONFIG_HOME": str(home / "config"),
        "COVE_GATEWAY": url,
    }
    env.pop("COVE_TOKEN", None)
    with (tmp_path / "gateway.log").open("ab") as log:
        gateway = subprocess.Popen(
            [*net.run_in("gw"), sys.executable, "-m", "cove", "server", "--no-worker", "--host", "0.0.0.0",
             "--port", str(PORT), "--home", str(home)],
            env=env, stdout=log, stderr=log,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert gateway.poll() is None, (tmp_path / "gateway.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.2)
    except BaseException:
        _stop(gateway)
        raise
    return Server(url=url, home=home, token=(home / "admin-token").read_text().strip(), proc=gateway, env=env)


def start_worker(
    net: Net, server: Server, tmp_path: Path, name: str, gateway_addr: str, own_addr: str, cpu: str
) -> subprocess.Popen[bytes]:
    """``cove worker`` ``host-NAME`` in namespace ``name``, with its own home and a worker token of its own."""
    token = server.cli_json("token", "create", "--name", f"worker-{name}", "--role", "worker")["token"]
    home = tmp_path / f"home-{name}"
    with (tmp_path / f"worker-{name}.log").open("ab") as wlog:
        return subprocess.Popen(
            [*net.run_in(name), sys.executable, "-m", "cove", "worker", "--gateway", f"http://{gateway_addr}:{PORT}",
             "--token", token, "--name", f"host-{name}", "--cpu", cpu, "--memory", "8Gi",
             "--home", str(home), "--advertise-host", own_addr],
            env={**server.env, "COVE_TOKEN": "", "COVE_HOME": str(home)}, stdout=wlog, stderr=wlog,
        )  # fmt: skip


def _run_cluster(net: Net, tmp_path: Path) -> None:
    server = start_gateway(net, tmp_path)
    home = server.home
    workers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        # Worker a is small (1.5 cores), b big (3 cores): what a holds also fits on b after a dies.
        for name, gw_addr, own_addr, cpu in (
            ("a", net.gateway_for_a, net.a, "1500m"),
            ("b", net.gateway_for_b, net.b, "3000m"),
        ):
            workers[name] = start_worker(net, server, tmp_path, name, gw_addr, own_addr, cpu)
        server.wait_for(lambda: len([w for w in server.cli_json("worker", "list") if w["alive"]]) == 2, timeout=30)
        ids = {w["name"]: w["id"] for w in server.cli_json("worker", "list")}

        square = server.deploy(f"{APP}:square")
        server.deploy(f"{APP}:echo")
        with server.http() as http:
            assert http.post("/taskqueue/square", json={"i": 0}).status_code == 202
            server.wait_for(lambda: len(_live(server, "square")) == 2, timeout=60)
            assert http.post("/endpoint/echo", json={"i": 0}).status_code == 200
        server.wait_for(lambda: len(_live(server, "echo")) == 2, timeout=60)
        echo_rows = _live(server, "echo")
        assert {c["worker_id"] for c in echo_rows} == {ids["host-a"], ids["host-b"]}, echo_rows
        assert all(c["address"].startswith("tcp:") for c in echo_rows + _live(server, "square"))
        # Each worker pulled the image into its own home over HTTP, verified by its sha256.
        image_id = square["image_id"]
        for name in ("a", "b"):
            assert (tmp_path / f"home-{name}" / "images" / image_id / "cove-image.json").is_file()
        assert (home / "exports" / f"env-{image_id}.tar.gz").is_file()

        expected = {}
        stop = threading.Event()
        outcomes: list[tuple[float, int]] = []

        def load() -> None:
            with server.http() as http:
                i = 0
                while not stop.is_set():
                    with contextlib.suppress(httpx.HTTPError):
                        reply = http.post("/endpoint/echo", json={"i": i}, timeout=30)
                        outcomes.append((time.monotonic(), reply.status_code))
                    i += 1

        def put(http: httpx.Client, start: int, count: int) -> None:
            for i in range(start, start + count):
                reply = http.post("/taskqueue/square", json={"i": i})
                assert reply.status_code == 202, reply.text
                expected[reply.json()["task_id"]] = i

        threads = [threading.Thread(target=load) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            with server.http() as http:
                put(http, 1, 300)
                on_a = {c["id"] for c in server.containers() if c["worker_id"] == ids["host-a"]}
                assert on_a, "worker a runs nothing"
                # The host dies: its worker and its containers, all at once.
                workers["a"].send_signal(signal.SIGKILL)
                for pid in _runner_pids(on_a):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
                put(http, 301, 300)
            server.wait_for(
                lambda: (
                    {c["worker_id"] for c in _live(server, "echo")} == {ids["host-b"]}
                    and len(_live(server, "echo")) == 2
                ),
                timeout=60,
            )
            server.wait_for(lambda: {c["worker_id"] for c in _live(server, "square")} == {ids["host-b"]}, timeout=30)
            recovered_at = time.monotonic()
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join()

        lost = next(w for w in server.cli_json("worker", "list") if w["id"] == ids["host-a"])
        assert lost["state"] == "lost"
        # Every task put before and during the kill ends COMPLETE, once, with its result.
        server.wait_for(
            lambda: sum(1 for _, state, _ in _task_rows(home) if state == "COMPLETE") == len(expected) + 1,
            timeout=60,
        )
        rows = {task_id: (state, result) for task_id, state, result in _task_rows(home)}
        for task_id, i in expected.items():
            state, result = rows[task_id]
            assert state == "COMPLETE" and result is not None and json.loads(result) == i * i
        assert len(rows) == len(expected) + 1
        # Requests fail only while the dead host's container is still believed alive; after, all succeed.
        before = [status for at, status in outcomes if at < killed_at]
        after = [status for at, status in outcomes if at > recovered_at]
        assert before and set(before) == {200}
        assert after and set(after) == {200}
    finally:
        for proc in workers.values():
            _stop(proc)
        _stop(server.proc)


def _live(server: Server, deployment: str) -> list[dict[str, Any]]:
    return [c for c in server.containers(deployment) if c["state"] in ("listening", "ready")]
