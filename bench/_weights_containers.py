"""Real container cold starts with model weights: request to first answer, weights fetched vs cached.

Used by ``bench/weights.py --containers``. A throwaway ``cove server`` (its
local worker, crun when available) holds the model in its own reservoir; two
endpoints list it in ``models=[...]`` and read every byte of the weights by
name, offline (what ``from_pretrained`` does); a third has no models (the
plain cold start, for reference). Each round empties the worker's weight
cache and stops every container, then times:

* **fetch**: the first endpoint's first call: container start, the worker's
  fetch from the reservoir into its cache, the read;
* **cached**: the second endpoint's first call: a new container on the same
  worker, the weights already in the cache (nothing fetched);
* **no weights**: the plain endpoint's first call.

While the first call waits, ``GET /api/v1/containers`` is polled: the bench
reports whether ``cove ps`` showed the bytes fetched so far.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _server import CoveServer

APP = """
import hashlib
from cove import Model, endpoint

MODEL = Model("bench/model")


def _read() -> dict:
    n = 0
    for path in sorted(MODEL.path().iterdir()):
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                n += len(chunk)
    return {"bytes": n}


@endpoint(models=[MODEL], cpu=0.5, memory=512, keep_warm_seconds=600)
def weights_first() -> dict:
    return _read()


@endpoint(models=["bench/model@main"], cpu=0.5, memory=512, keep_warm_seconds=600)
def weights_second() -> dict:
    return _read()


@endpoint(cpu=0.5, memory=512, keep_warm_seconds=600)
def no_weights() -> dict:
    return {"bytes": 0}
"""


def _stop_all(server: CoveServer) -> None:
    for row in server.http.get("/api/v1/containers").json():
        if row.get("id"):
            server.http.post(f"/api/v1/containers/{row['id']}/stop")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not [r for r in server.http.get("/api/v1/containers").json() if r.get("id")]:
            return
        time.sleep(0.2)
    raise RuntimeError("containers did not stop")


def _empty_caches(home: Path) -> None:
    for cache in (home / "workers").glob("*/weights"):
        for sub in ("hub", "blobs"):
            shutil.rmtree(cache / sub, ignore_errors=True)
            (cache / sub).mkdir()


def _timed_call(server: CoveServer, name: str, watch: bool) -> tuple[float, list[str]]:
    seen: list[str] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            for row in server.http.get("/api/v1/containers").json():
                reason = row.get("reason") or ""
                if "fetching weights" in reason and reason not in seen:
                    seen.append(reason)
            time.sleep(0.05)

    watcher = threading.Thread(target=poll, daemon=True) if watch else None
    if watcher is not None:
        watcher.start()
    started = time.perf_counter()
    reply = server.http.post(f"/endpoint/{name}", json={}, timeout=600)
    elapsed = time.perf_counter() - started
    done.set()
    if watcher is not None:
        watcher.join()
    reply.raise_for_status()
    return elapsed, seen


def run(model_folder: Path, rounds: int) -> dict[str, Any]:
    """Seconds per round for each variant, and the progress lines ``cove ps`` showed during fetches."""
    server = CoveServer()
    try:
        subprocess.run(
            [sys.executable, "-m", "cove", "reservoir", "model", "add", "bench/model", str(model_folder), "--json"],
            env=server.env,
            check=True,
            capture_output=True,
        )
        app = server.tmp / "app" / "weights_app.py"
        app.parent.mkdir()
        app.write_text(APP)
        for name in ("weights_first", "weights_second", "no_weights"):
            server.cli("deploy", f"{app}:{name}")
        runtime = server.cli("worker", "list")[0]["runtime"]
        results: dict[str, list[float]] = {"fetch": [], "cached": [], "no weights": []}
        progress: list[str] = []
        for _ in range(rounds):
            _stop_all(server)
            _empty_caches(server.home)
            seconds, seen = _timed_call(server, "weights-first", watch=True)
            results["fetch"].append(seconds)
            progress += seen
            results["cached"].append(_timed_call(server, "weights-second", watch=False)[0])
            results["no weights"].append(_timed_call(server, "no-weights", watch=False)[0])
        return {"runtime": runtime, "results": results, "progress": progress}
    finally:
        server.close()


def report(mib: int, rounds: int, measured: dict[str, Any]) -> None:
    print(
        f"container cold start, request to first answer ({measured['runtime']} engine, {mib} MiB weights read "
        f"in full, {rounds} rounds), seconds:"
    )
    print(f"  {'':12s} {'median':>8s} {'min':>8s} {'max':>8s}")
    for name, values in measured["results"].items():
        print(f"  {name:12s} {statistics.median(values):8.3f} {min(values):8.3f} {max(values):8.3f}")
    lines = measured["progress"]
    print(
        f"  progress lines seen in `cove ps` during fetches: {len(lines)}" + (f", e.g. {lines[-1]!r}" if lines else "")
    )


ROLLOUT_APP = """
from cove import Model, QueueDepthAutoscaler, endpoint

MODEL = Model("bench/model")
VERSION = {version}


@endpoint(models=[MODEL], cpu=0.25, memory=256, autoscaler=QueueDepthAutoscaler(min_containers={n}, max_containers={n}))
def weights_rollout() -> dict:
    return {{"version": VERSION, "files": sorted(p.name for p in MODEL.path().iterdir())}}
"""


def _resolves(server: CoveServer) -> int:
    """Files the reservoir has served so far (each ``resolve`` GET in the gateway's access log)."""
    log = (server.tmp / "server.log").read_text(errors="replace")
    return len(re.findall(r"GET /reservoir/bench/model/resolve/\S+ 200", log))


def _ready(server: CoveServer, name: str) -> set[str]:
    rows = server.http.get("/api/v1/containers").json()
    return {r["id"] for r in rows if r.get("id") and r.get("deployment") == name and r.get("state") == "ready"}


def _wait(check: Any, what: str, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def rollout(model_folder: Path, containers: int, versions: int) -> dict[str, Any]:
    """The weight cache during rollouts: each new version replaces every container on the same worker.

    A start is a hit when the worker downloaded no file for it; the reservoir's access log counts files
    served, so hits = starts - fetches (a fetch of the whole commit serves each of its files once).
    """
    os.environ["COVE_ACCESS_LOG"] = "1"  # the bench server logs each request: the reservoir's downloads
    server = CoveServer()
    try:
        subprocess.run(
            [sys.executable, "-m", "cove", "reservoir", "model", "add", "bench/model", str(model_folder), "--json"],
            env=server.env,
            check=True,
            capture_output=True,
        )
        files = sum(1 for p in model_folder.rglob("*") if p.is_file())
        app = server.tmp / "rollout" / "rollout_app.py"
        app.parent.mkdir()
        rounds = []
        previous: set[str] = set()
        for version in range(versions + 1):  # the first deploy, then `versions` rollouts
            before = _resolves(server)
            app.write_text(ROLLOUT_APP.format(version=version, n=containers))
            started = time.perf_counter()
            server.cli("deploy", f"{app}:weights_rollout")
            old = previous

            def replaced(old: set[str] = old) -> set[str] | None:
                ready = _ready(server, "weights-rollout")
                return ready if len(ready - old) >= containers and not (ready & old) else None

            previous = _wait(replaced, f"version {version} to replace every container")
            seconds = time.perf_counter() - started
            fetched = (_resolves(server) - before) / files
            rounds.append({"version": version, "starts": containers, "fetches": fetched, "seconds": seconds})
        return {"containers": containers, "files": files, "rounds": rounds}
    finally:
        server.close()
        os.environ.pop("COVE_ACCESS_LOG", None)


def report_rollout(mib: int, measured: dict[str, Any]) -> None:
    print(
        f"weight cache during rollouts ({measured['containers']} containers on one worker, {mib} MiB model, "
        "each version replaces every container):"
    )
    print(f"  {'':10s} {'starts':>7s} {'fetches':>8s} {'hit rate':>9s} {'replaced in s':>14s}")
    rollouts = [r for r in measured["rounds"] if r["version"] > 0]
    for r in measured["rounds"]:
        label = "first" if r["version"] == 0 else f"rollout {r['version']}"
        rate = 1 - min(r["fetches"], r["starts"]) / r["starts"]
        print(f"  {label:10s} {r['starts']:7d} {r['fetches']:8.1f} {rate:9.0%} {r['seconds']:14.2f}")
    if rollouts:
        starts = sum(r["starts"] for r in rollouts)
        hits = starts - sum(min(r["fetches"], r["starts"]) for r in rollouts)
        print(f"  hit rate over the rollouts: {hits / starts:.0%} ({hits:.0f} of {starts} starts fetched nothing)")
