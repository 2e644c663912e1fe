"""Sharing one GPU between isolated containers: throughput, hard memory limits, fault isolation, start times.

On one GPU (the machine's first), with a ``cove server`` of its own:

1. one container holding the whole GPU runs a bf16 matmul loop (the reference);
2. 1, 2, 4 and 8 containers, each with ``gpu_memory`` = 1/8 of the card (and so
   12 % of its SMs), run the same loop at once: per-container and total
   throughput against the whole-GPU figure (goal: 8 tenants >= 90 %);
3. while 4 of them run, one more 1/8 container allocates twice its share (it
   must get CUDA out-of-memory) and another triggers a device-side assert;
   the 4 must finish with their throughput intact;
4. time from request to first GPU response for a new 1/8 container (cold:
   container, MPS daemon, CUDA context) and for the same container again (warm).

The image is ``Image.from_python_env`` of an environment that already has
PyTorch with CUDA (default: this interpreter's ``sys.prefix``), so nothing is
downloaded. Prints a table; exits with a message (code 2) when there is no
GPU or no PyTorch.

    python bench/gpu_share.py [--env /path/to/venv] [--seconds 10] [--size 8192]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

APP = """
import os
import time

from cove import Image, QueueDepthAutoscaler, endpoint

IMAGE = Image.from_python_env(os.environ.get("BENCH_PYENV", "/usr"))
SHARE = int(os.environ.get("BENCH_SHARE_MIB", "1024"))
COMMON = dict(image=IMAGE, cpu=1, memory=8192, timeout=900)
FRACTION = dict(COMMON, gpu="any", gpu_memory=SHARE)


def _loop(seconds, n):
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            a @ b
        torch.cuda.synchronize()
        steps += 10
    elapsed = time.perf_counter() - start
    return {"tflops": 2 * n**3 * steps / elapsed / 1e12, "steps": steps, "seconds": elapsed}


@endpoint(**COMMON, gpu="any", gpu_count=1, keep_warm_seconds=1)
def whole(seconds: float = 10.0, n: int = 8192) -> dict:
    return _loop(seconds, n)


@endpoint(**FRACTION, keep_warm_seconds=300, autoscaler=QueueDepthAutoscaler(max_containers=8))
def frac(seconds: float = 10.0, n: int = 8192) -> dict:
    return _loop(seconds, n)


@endpoint(**FRACTION, keep_warm_seconds=1)
def hog(times_share: float = 2.0) -> dict:
    import torch

    try:
        block = torch.empty(int(SHARE * times_share * 1024 * 1024), dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()
        return {"allocated": block.numel(), "oom": False}
    except torch.OutOfMemoryError as exc:
        return {"oom": True, "error": str(exc).splitlines()[0]}


@endpoint(**FRACTION, keep_warm_seconds=1)
def fault() -> dict:
    import torch

    x = torch.zeros(4, device="cuda")
    try:
        x[torch.tensor([1000], device="cuda")] = 1.0  # device-side assert: index out of bounds
        torch.cuda.synchronize()
        return {"faulted": False}
    except Exception as exc:
        return {"faulted": True, "error": str(exc).splitlines()[0]}


@endpoint(**FRACTION, keep_warm_seconds=300)
def ping() -> dict:
    import torch

    return {"sum": float(torch.ones(16, device="cuda").sum().item())}
"""


def _give_up(message: str) -> None:
    print(f"gpu_share: {message}", file=sys.stderr)
    sys.exit(2)


def _gpu() -> tuple[str, int]:
    from cove.gpu import detect_inventory

    inventory = detect_inventory()
    devices = inventory.devices()
    if inventory.kind != "nvml" or not devices:
        _give_up(f"no NVIDIA GPU on this machine (inventory: {inventory.kind}); nothing to measure")
    return devices[0].name, devices[0].memory_mib


def _check_torch(prefix: Path) -> None:
    python = next((prefix / "bin" / n for n in ("python", "python3") if (prefix / "bin" / n).exists()), None)
    if python is None:
        _give_up(f"no bin/python in {prefix}")
        return
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)"
    if subprocess.run([str(python), "-c", probe], capture_output=True, check=False).returncode != 0:
        _give_up(f"{python} cannot import torch with CUDA; pass --env with an environment that can")


def _call(server: Any, name: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    reply = server.http.post(f"/endpoint/{name}", json=body, timeout=900)
    elapsed = time.perf_counter() - start
    if reply.status_code != 200:
        raise RuntimeError(f"{name} answered {reply.status_code}: {reply.text[:500]}")
    return elapsed, reply.json()


def _together(server: Any, calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[float, dict[str, Any]]]:
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda c: _call(server, *c), calls))


def _wait_no_containers(server: Any, deployment: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = server.http.get("/api/v1/containers").json()
        if not any(r["deployment"] == deployment and r["id"] for r in rows):
            return
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default=sys.prefix, help="an environment with PyTorch+CUDA (default: sys.prefix)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each matmul run")
    parser.add_argument("--size", type=int, default=8192, help="matrix size n (n×n bf16)")
    args = parser.parse_args()
    name, memory_mib = _gpu()
    env_path = Path(args.env).resolve()
    _check_torch(env_path)
    share = memory_mib // 8
    from _server import CoveServer

    folder = Path(tempfile.mkdtemp(prefix="cove-gpu-bench-"))
    (folder / "app.py").write_text(textwrap.dedent(APP))
    os.environ.update(BENCH_PYENV=str(env_path), BENCH_SHARE_MIB=str(share))
    print(f"GPU: {name}, {memory_mib} MiB; share = 1/8 = {share} MiB; env {env_path}", flush=True)
    server = CoveServer()
    rows: list[tuple[str, str]] = []
    try:
        for endpoint in ("whole", "frac", "hog", "fault", "ping"):
            server.cli("deploy", f"{folder / 'app.py'}:{endpoint}")
        run = {"seconds": args.seconds, "n": args.size}

        _call(server, "whole", {"seconds": 1, "n": args.size})  # start it and warm CUDA up
        _t, alone = _call(server, "whole", run)
        base = alone["tflops"]
        rows.append(("whole GPU, 1 container", f"{base:8.1f} TFLOP/s"))
        _wait_no_containers(server, "whole")

        for count in (1, 2, 4, 8):
            _together(server, [("frac", {"seconds": 1, "n": args.size})] * count)  # containers up, CUDA warm
            results = _together(server, [("frac", run)] * count)
            each = [r["tflops"] for _t, r in results]
            total = sum(each)
            rows.append(
                (
                    f"{count} × 1/8 containers",
                    f"{total:8.1f} TFLOP/s total ({100 * total / base:5.1f} % of whole); "
                    f"per container {min(each):.1f}–{max(each):.1f}",
                )
            )

        calls: list[tuple[str, dict[str, Any]]] = [("frac", run)] * 4
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            busy = [pool.submit(_call, server, *c) for c in calls]
            time.sleep(min(3.0, args.seconds / 3))
            hog = pool.submit(_call, server, "hog", {"times_share": 2.0}).result()[1]
            fault = pool.submit(_call, server, "fault", {}).result()[1]
            survivors = [f.result()[1]["tflops"] for f in busy]
        rows.append(
            ("over-allocation (2× share)", "CUDA OOM: " + hog.get("error", "") if hog["oom"] else "NOT refused")
        )
        rows.append(("device-side assert", "faulted in its container" if fault["faulted"] else "did not fault"))
        rows.append(
            (
                "4 neighbours meanwhile",
                f"all {len(survivors)} finished, {min(survivors):.1f}–{max(survivors):.1f} TFLOP/s",
            )
        )

        cold, _ = _call(server, "ping", {})
        warm = min(_call(server, "ping", {})[0] for _ in range(5))
        rows.append(("first GPU response, 1/8, cold", f"{cold * 1000:8.0f} ms"))
        rows.append(("first GPU response, 1/8, warm", f"{warm * 1000:8.1f} ms"))
    finally:
        server.close()
    width = max(len(label) for label, _ in rows)
    print()
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
