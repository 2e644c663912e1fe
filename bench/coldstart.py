"""Cold-start benchmark: request to first response with zero containers, per engine.

For each start: create the listening socket (as the worker does), start the
engine, connect and POST /invoke at once (the request waits in the kernel
backlog while the container boots), read the response, then stop the
container (not timed). Prints p50/p95 per engine and the median of each
phase the engine records (``mount_ms``, ``spec_ms``, ``spawn_ms``,
``ready_ms``).

    uv run python bench/coldstart.py [--starts 50] [--engines crun,crun+pool,process,runc]

``crun+pool`` is crun with the container made ahead (``crun create``, not timed,
as the worker's pool does after a deployment scaled): the timed part is
``crun start`` → first response.

Engines that cannot run here (not installed, not root) are listed as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cove
from cove.runtime import CrunRuntime, LaunchSpec, ProcessRuntime, open_unix_listener

APP = "def handler(x=0):\n    return {'x': x}\n"
REQUEST = b'POST /invoke HTTP/1.1\r\nConnection: close\r\nContent-Length: 8\r\n\r\n{"x": 1}'


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _engine(name: str, root: Path) -> Any:
    if name == "process":
        return ProcessRuntime()
    binary = name.removesuffix("+pool")
    if os.geteuid() != 0 or shutil.which(binary) is None:
        return None
    runtime = CrunRuntime(binary, root=root / name)
    runtime.pylib.build(Path(cove.__file__).resolve().parent)  # as a worker does when it starts (not timed)
    return runtime


async def _one(runtime: Any, spec: LaunchSpec, sock: Path, pooled: bool) -> tuple[float, dict[str, float]]:
    if pooled:
        listener = open_unix_listener(sock)
        try:
            created = await runtime.create(spec, listener)
        finally:
            listener.close()
        await asyncio.sleep(0.05)  # made ahead: let the machine settle before the timed part
        started = time.perf_counter()
        handle = await created.start(spec.container_id + "-served")
    else:
        started = time.perf_counter()
        listener = open_unix_listener(sock)
        try:
            handle = await runtime.start(spec, listener)
        finally:
            listener.close()
    reader, writer = await asyncio.open_unix_connection(str(sock))
    writer.write(REQUEST)
    await writer.drain()
    reply = await reader.read()
    elapsed = (time.perf_counter() - started) * 1000
    writer.close()
    if not reply.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"bad reply: {reply[:200]!r}; stderr: {await handle.stderr.read(2000)!r}")
    await handle.wait_ready()
    timings = dict(handle.timings)
    await handle.stop(5)
    return elapsed, timings


async def _bench(name: str, runtime: Any, root: Path, starts: int) -> None:
    venv, pylib = root / "venv", root / "pylib"
    results: list[float] = []
    phases: dict[str, list[float]] = {}
    for index in range(starts + 3):  # the first few warm the page cache and are dropped
        spec = LaunchSpec(
            container_id=f"bench-{name.replace('+', '-')}-{index}",
            python=venv / "bin" / "python",
            venv=venv,
            code_dir=root / "code",
            work_dir=root / "work" / f"{name}-{index}",
            pylib_dir=pylib,
            module="app",
            function="handler",
        )
        elapsed, timings = await _one(runtime, spec, root / f"{name}.sock", name.endswith("+pool"))
        if index >= 3:
            results.append(elapsed)
            for phase, value in timings.items():
                phases.setdefault(phase, []).append(value)
    breakdown = "  ".join(f"{phase} {statistics.median(values):.2f}" for phase, values in phases.items())
    print(
        f"{name:<8} n={len(results):<4} p50 {statistics.median(results):6.1f} ms   "
        f"p95 {_percentile(results, 95):6.1f} ms   min {min(results):6.1f} ms   | median phases: {breakdown}"
    )


async def _main(starts: int, engines: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="cove-coldstart-") as tmp:
        root = Path(tmp)
        uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(root / "venv")], check=True)
        (root / "code").mkdir()
        (root / "code" / "app.py").write_text(APP)
        (root / "pylib").mkdir()
        (root / "pylib" / "cove").symlink_to(Path(cove.__file__).parent)
        print(f"cold start, no-import handler, {starts} starts per engine (request → first response):")
        for name in engines:
            runtime = _engine(name, root / "oci")
            if runtime is None:
                print(f"{name:<8} skipped: not installed or not root")
                continue
            await _bench(name, runtime, root, starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=50)
    parser.add_argument("--engines", default="crun,crun+pool,process,runc")
    args = parser.parse_args()
    asyncio.run(_main(args.starts, [name.strip() for name in args.engines.split(",") if name.strip()]))


if __name__ == "__main__":
    main()
