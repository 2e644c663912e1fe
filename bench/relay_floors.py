"""The gateway's CPU per relayed request against the floors of a relay, Python and compiled, in one run.

One ``cove server`` (its own home, SQLite) serves ``bench/apps/noop`` warm.
Next to it, loaded the same way in alternating rounds of ``wrk -t1 -c32``:

- ``bare app``: a bare uvicorn app answering the JSON itself (``bare_uvicorn.py``);
- ``bare relay``: uvicorn relaying to the same container with the gateway's
  container client and nothing else (``bare_relay.py``);
- ``go app`` and ``go relay``: the same two in Go's standard library
  (``floors/go_relay/``), built here when ``go`` is on the PATH;
- ``c pump``: bytes pumped between each client connection and one of its
  own to the container with epoll, in C, parsing nothing (``floors/pump.c``;
  wrk asks for the container's ``/invoke`` itself), built when ``cc`` is on
  the PATH: the kernel's floor of any relay that holds both connections.

A floor whose compiler is missing is skipped.
CPU comes from each process's own ``/proc/PID/stat`` counters (user + system,
and the user part), divided by wrk's requests. The compiled floors say what a
relay costs on this machine when the interpreter is not in it, and the pump
what the system calls and wake-ups of a relay cost when nothing else runs.

    .venv/bin/python bench/relay_floors.py [--rounds 3] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from _server import CoveServer, free_port, start_bare_uvicorn
from _wrk import wrk_post_counted

HERE = Path(__file__).resolve().parent
FLOORS = HERE / "floors"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of one process so far, its own only: ``cove server``'s children are its
    worker and containers, whose work is the container's, not the relay's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def start_compiled(binary: Path, upstream: str, path: str = "") -> tuple[subprocess.Popen[bytes], str]:
    """A compiled floor: ``upstream`` is the container's address (or ``self``: the Go app answers itself)."""
    port = free_port()
    proc = subprocess.Popen([str(binary), str(port)], env={**os.environ, "COVE_BENCH_UPSTREAM": upstream})
    url = f"http://127.0.0.1:{port}/{path}"
    deadline = time.monotonic() + 30
    while True:  # the pump parses nothing, so no request of our own: wait for its port to listen
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, url
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{binary.name} did not listen") from None
            time.sleep(0.1)


def build(binary: Path, command: list[str], env: dict[str, str] | None = None) -> Path | None:
    """Build one compiled floor (offline: no dependencies) as ``binary``, which ``command`` names as ``{out}``;
    None when its compiler (the command's first word) is missing."""
    if shutil.which(command[0]) is None:
        print(f"{command[0]} is not on the PATH: its floor is skipped")
        return None
    argv = [str(binary) if word == "{out}" else word for word in command]
    subprocess.run(argv, cwd=FLOORS, env={**os.environ, **(env or {})}, check=True)
    return binary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cove-bench-floors-"))
    server = CoveServer()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        server.cli("deploy", str(HERE / "apps" / "noop" / "app.py") + ":echo")
        for _ in range(3):
            server.http.post("/endpoint/echo", json={}).raise_for_status()
        (container,) = [c for c in server.http.get("/api/v1/containers").json() if c["id"]]
        upstream = container["address"]
        targets = [("gateway", server.url + "/endpoint/echo", server.proc.pid)]
        for name, module, env in (("bare app", "bare_uvicorn", None), ("bare relay", "bare_relay", upstream)):
            proc, url = start_bare_uvicorn(module, {"COVE_BENCH_UPSTREAM": env} if env else None)
            procs.append(proc)
            targets.append((name, url, proc.pid))
        go_env = {"GO111MODULE": "off", "GOCACHE": str(work / "gocache"), "CGO_ENABLED": "0"}
        go = build(work / "go-relay", ["go", "build", "-o", "{out}", "./go_relay"], go_env)
        pump = build(work / "pump", ["cc", "-O2", "-o", "{out}", "pump.c"])
        compiled = [("go app", go, "self", ""), ("go relay", go, upstream, ""), ("c pump", pump, upstream, "invoke")]
        for name, binary, target, path in compiled:
            if binary is not None:
                proc, url = start_compiled(binary, target, path)
                procs.append(proc)
                targets.append((name, url, proc.pid))
        time.sleep(0.5)
        print(f"warm endpoint, one container ({upstream.split(':')[0]}), {os.cpu_count()} CPUs, "
              f"wrk -t1 -c{args.concurrency} -d{args.seconds:g}s per row")  # fmt: skip
        for round_ in range(1, args.rounds + 1):
            for name, url, pid in targets:
                user, system = cpu_seconds(pid)
                line, made = wrk_post_counted(url, server.token, "{}", args.concurrency, args.seconds, threads=1)
                user_after, system_after = cpu_seconds(pid)
                spent_user, spent_system = user_after - user, system_after - system
                scale = 1e6 / max(1, made)
                print(
                    f"round {round_} {name:<10} {line}  | CPU {(spent_user + spent_system) * scale:4.0f} µs/req"
                    f" (user {spent_user * scale:3.0f})",
                    flush=True,
                )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)
        server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
