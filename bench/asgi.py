"""Web app benchmark: a trivial FastAPI route (``@asgi``) against the same handler as an ``@endpoint``.

    python bench/asgi.py [--seconds S] [--requests N] [--concurrency C]

Starts its own ``cove server`` (temporary home, free loopback port), prepares
an environment holding FastAPI from this interpreter's own packages (no index
is reached) and deploys ``bench/apps/asgi/app.py``: both deployments run on
that image with one container of 32 concurrent requests. Then, through the
gateway, for each: a sequential httpx loop (p50/p99 latency and requests/s at
concurrency 1) and ``wrk`` at concurrency 1 and ``C`` (requests/s, p50, p99).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import distribution
from pathlib import Path

import httpx
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import CoveServer
from _wrk import wrk_post

APP = Path(__file__).resolve().parent / "apps" / "asgi" / "app.py"
BODY = '{"x": [1.0, 2.0, 3.0, 4.0]}'


def make_env(root: Path) -> Path:
    """A venv under ``root`` holding FastAPI and its requirements, copied from this interpreter's environment."""
    env = root / "bench-web-env"
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", str(env)], check=True)
    (site,) = env.glob("lib/python3*/site-packages")
    todo, seen = ["fastapi"], set()
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        dist = distribution(name)
        for file in dist.files or ():
            if ".." not in Path(file).parts:
                (site / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(str(dist.locate_file(file))), site / file)
        required = map(Requirement, dist.requires or ())
        todo += [r.name for r in required if not r.marker or r.marker.evaluate({"extra": ""})]
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    return env


def httpx_loop(client: httpx.Client, path: str, requests: int) -> str:
    """Sequential POSTs over one kept-alive connection: latency as one caller sees it."""
    latencies = []
    started = time.perf_counter()
    for _ in range(requests):
        begun = time.perf_counter()
        reply = client.post(path, content=BODY, headers={"Content-Type": "application/json"})
        latencies.append((time.perf_counter() - begun) * 1000)
        if reply.status_code != 200:
            raise RuntimeError(f"{path}: {reply.status_code} {reply.text}")
    seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"httpx c=1   {requests / seconds:>7.0f} req/s  p50 {statistics.median(ordered):6.2f}ms  p99 {p99:6.2f}ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cove-bench-envs-"))
    root.chmod(0o755)
    env = make_env(root)
    os.environ["COVE_PYTHON_ENV_ROOTS"] = str(root)  # the server's worker may run images from it
    server = CoveServer()
    try:
        deploy_env = {**server.env, "COVE_TOKEN": server.token, "COVE_BENCH_PYENV": str(env)}
        subprocess.run(
            [sys.executable, "-m", "cove", "deploy", str(APP), "--json"],
            env=deploy_env,
            check=True,
            capture_output=True,
        )
        targets = {"@endpoint": "/endpoint/echo", "@asgi (FastAPI)": "/asgi/web/echo"}
        for path in targets.values():  # cold starts, then warm-up
            for _ in range(200):
                server.http.post(path, content=BODY, headers={"Content-Type": "application/json"}).raise_for_status()
        print(f"through the gateway at {server.url}, one container each (concurrent_requests=32)")
        for label, path in targets.items():
            print(f"\n{label}  POST {path}")
            print("  " + httpx_loop(server.http, path, args.requests))
            for concurrency in (1, args.concurrency):
                print("  " + wrk_post(server.url + path, server.token, BODY, concurrency, args.seconds))
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
