"""A warm endpoint through the leader and through a follower: req/s, p50/p99, and each gateway's CPU per request.

Starts a throwaway PostgreSQL (``tests/pg_cluster.py``), two ``cove server
--no-worker`` gateways with homes of their own on it (the first leads), and
one ``cove worker --advertise-host 127.0.0.1`` (containers on TCP, so the
follower can relay to them itself), and a third gateway of two processes
(``cove server --processes 2``, both following). Deploys ``bench/apps/noop``
(one container, ``concurrent_requests=32``), warms it through each, then loads
each gateway in turn at c=1, 32 and 128, and once with ``wrk -t1 -c32``
(how many calls the express lane served is printed at the end). CPU
time comes from each gateway process's own counters (``/proc/PID/stat``, user
+ system, and the user part alone; for ``--processes 2`` the sum of its gateway
processes), divided by the requests of that run, wrk's too: the follower's
requests should cost the leader nothing.
Two floors are loaded the same way: a bare uvicorn app answering the JSON
itself (``bare_uvicorn.py``) and one relaying it to the same container with the
gateway's own container client and nothing else (``bare_relay.py``); the
gateway's CPU per request minus the bare relay's is what the platform adds.

    .venv/bin/python bench/gateways.py [--requests 4000] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _load import LoadResult, run_load
from _server import free_port, start_bare_uvicorn, wait_http
from _wrk import wrk_post_counted

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from pg_cluster import PgCluster, start_cluster  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the gateway processes of ``--processes N``)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat(int(entry))[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError):
                continue
    return found


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process so far (fields 14 and 15 of /proc/PID/stat), with its children's
    when it is the supervisor of several gateway processes (it has no load of its own)."""
    fields = _stat(pid)
    user, system = int(fields[11]) / TICKS, int(fields[12]) / TICKS
    for child in children(pid):
        if Path(f"/proc/{child}/stat").exists():
            child_user, child_system = cpu_seconds(child)
            user, system = user + child_user, system + child_system
    return user, system


def cpu_per_request(pids: dict[str, int], before: dict[str, tuple[float, float]], requests: int) -> str:
    """Each process's CPU per request since ``before``, with the user-space part (the rest is the kernel's)."""
    parts = []
    for name, pid in pids.items():
        user, system = cpu_seconds(pid)
        spent_user, spent = user - before[name][0], user + system - sum(before[name])
        scale = 1e6 / max(1, requests)
        parts.append(f"{name} {spent * scale:5.0f} µs/req (user {spent_user * scale:3.0f})")
    return "CPU " + "  ".join(parts)


class Cluster:
    """The processes of one run, under one temporary folder."""

    def __init__(self, pg: PgCluster) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="cove-bench-gw-"))
        self.database_url = pg.url(pg.create_database())
        self.key = subprocess.run(
            [sys.executable, "-c", "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self, home: Path, url: str) -> dict[str, str]:
        env = {
            **os.environ,
            "COVE_HOME": str(home),
            "COVE_GATEWAY": url,
            "XDG_CONFIG_HOME": str(home / "config"),
            "COVE_DATABASE_URL": self.database_url,
            "COVE_SECRET_KEY": self.key,
            "COVE_NO_PROGRESS": "1",
        }
        env.setdefault("COVE_UV_CACHE_DIR", str(Path.home() / ".cache" / "cove-test-uv"))
        env.pop("COVE_TOKEN", None)
        return env

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "cove", *args], env=env, stdout=log, stderr=log)
        self.procs.append(proc)
        return proc

    def gateway(self, name: str, *extra: str) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
        home = self.tmp / name
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = self.env(home, url)
        proc = self.spawn(name, ["server", "--no-worker", "--port", str(port), "--home", str(home), *extra], env)
        wait_http(f"{url}/healthz")
        return proc, url, env

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def measure(pids: dict[str, int], url: str, token: str, concurrency: int, requests: int, seconds: float) -> str:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result: LoadResult = asyncio.run(
        run_load(url, b"{}", concurrency=concurrency, requests=requests, max_seconds=seconds, token=token)
    )
    return f"{result.row()}  | {cpu_per_request(pids, before, result.requests)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    pg = start_cluster()
    cluster = Cluster(pg)
    try:
        leader, leader_url, env = cluster.gateway("leader")
        token = (cluster.tmp / "leader" / "admin-token").read_text().strip()
        follower, follower_url, _ = cluster.gateway("follower")
        pair, pair_url, _ = cluster.gateway("processes", "--processes", "2")
        worker_home = cluster.tmp / "worker"
        cluster.spawn(
            "worker",
            ["worker", "--gateway", leader_url, "--token", token, "--name", "w1", "--home", str(worker_home),
             "--advertise-host", "127.0.0.1"],
            {**env, "COVE_HOME": str(worker_home)},
        )  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 60
        while httpx.get(f"{leader_url}/healthz").json().get("workers") != 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not register")
            time.sleep(0.2)
        subprocess.run(
            [sys.executable, "-m", "cove", "deploy", f"{ROOT}/bench/apps/noop/app.py:echo"],
            env={**env, "COVE_TOKEN": token},
            check=True,
            capture_output=True,
        )
        for url in (follower_url, leader_url, pair_url, pair_url):  # the first one cold, through the follower
            reply = httpx.post(f"{url}/endpoint/echo", json={}, headers=headers, timeout=120)
            reply.raise_for_status()
        time.sleep(1.0)  # the followers' view of the ready container
        pids = {"leader": leader.pid, "follower": follower.pid, "2 procs": pair.pid}
        (container,) = [c for c in httpx.get(f"{leader_url}/api/v1/containers", headers=headers).json() if c["id"]]
        bare, bare_url = start_bare_uvicorn()
        relay, relay_url = start_bare_uvicorn("bare_relay", {"COVE_BENCH_UPSTREAM": container["address"]})
        peers = {"bare app": (bare, bare_url), "bare relay": (relay, relay_url)}
        print(f"warm endpoint, one container (tcp), {os.cpu_count()} CPUs; CPU per request of each gateway")
        try:
            targets = (("leader", leader_url), ("follower", follower_url), ("2 procs", pair_url))
            for via, url in targets:
                for concurrency in (1, 32, 128):
                    row = measure(pids, f"{url}/endpoint/echo", token, concurrency, args.requests, args.seconds)
                    print(f"through {via:<10} {row}")
            # The floors: uvicorn answering by itself, and uvicorn relaying with the gateway's container client.
            for via, (proc, url) in peers.items():
                for concurrency in (1, 32, 128):
                    row = measure({via: proc.pid}, url, token, concurrency, args.requests, args.seconds)
                    print(f"{via:<18} {row}")
            routes = [(via, f"{url}/endpoint/echo", pids[via]) for via, url in targets]
            routes += [(via, url, proc.pid) for via, (proc, url) in peers.items()]
            for via, route, pid in routes:
                before = {via: cpu_seconds(pid)}
                line, made = wrk_post_counted(route, token, "{}", 32, 10, threads=1)
                print(f"through {via:<10} {line}  | {cpu_per_request({via: pid}, before, made)}")
        finally:
            for proc, _ in peers.values():
                proc.terminate()
                proc.wait(timeout=20)
        forwarded = [
            line
            for line in httpx.get(f"{leader_url}/metrics", headers=headers).text.splitlines()
            if line.startswith('cove_forwarded_requests_total{route="endpoint"}')
        ]
        print("leader's forwarded endpoint requests:", forwarded[0].split()[-1] if forwarded else "0")
        for via, url in (("leader", leader_url), ("follower", follower_url)):
            express = [
                line.split()[-1]
                for line in httpx.get(f"{url}/metrics", headers=headers).text.splitlines()
                if line.startswith("cove_express_invocations_total{")
            ]
            print(f"{via}'s invocations served by the express lane:", express[0] if express else "0")
    finally:
        cluster.close()
        pg.pg_ctl("-m", "immediate", "-w", "stop")


if __name__ == "__main__":
    main()
