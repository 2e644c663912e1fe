"""Benchmark the node weight cache: the weights part of a cold start, first fetch vs cached vs a volume copy.

    uv run python bench/weights.py                 # a 200 MiB model, 3 rounds
    uv run python bench/weights.py --mib 1024 --rounds 5
    uv run python bench/weights.py --containers    # also real container cold starts (a cove server)
    uv run python bench/weights.py --mib 1024 --containers --rollouts 3   # 1 GiB; cache hit rate in rollouts

A reservoir (``python -m cove.reservoir serve``, its own process) holds a
repository with a config, a tokenizer and one safetensors file of ``--mib``
MiB. For each round, on this machine over loopback:

"available" is the time until the weights can be opened in the container,
"load" the fresh process resolving and reading them (Python and
``huggingface_hub`` start-up included), "total" both.

* **cold**: an empty node cache fetches the commit (download, sha256, fsync,
  rename, link into the Hugging Face layout), then a fresh process with
  ``HF_HUB_OFFLINE=1`` and the cache as ``HF_HUB_CACHE`` resolves the model by
  name with ``huggingface_hub`` and reads every byte of the weights (what
  ``from_pretrained`` does);
* **cached**: the same with the commit already in the cache (a second
  container on the node, or the node after a restart: a new cache object);
* **volume copy**: the way without a cache, copying the snapshot into a
  per-container folder before the same read.

The page cache is not dropped between rounds (that needs root); every
variant reads the same bytes, so the difference is the fetch and the copy.

With ``--containers``, the same model goes into a ``cove server``'s reservoir
and real containers start with it (see ``_weights_containers``): request to
first answer with the worker fetching the weights, with them already cached,
and without weights at all.

With ``--rollouts N``, a deployment of ``--rollout-containers`` containers
reading the model is deployed and then rolled out N times (new code, same
model): every container is replaced on the same worker, and the reservoir's
access log tells how many starts had to fetch the weights (the hit rate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cove._wire.models import ModelRef
from cove.reservoir.models import ingest
from cove.reservoir.store import Store
from cove.worker._weights import WeightCache

READ = (
    "import sys, huggingface_hub as hf\n"
    "p = hf.hf_hub_download('bench/model', 'model.safetensors')\n"
    "hf.hf_hub_download('bench/model', 'config.json')\n"
    "n = 0\n"
    "with open(p, 'rb') as fh:\n"
    "    while chunk := fh.read(1 << 22):\n"
    "        n += len(chunk)\n"
    "print(n)\n"
)


def make_model(folder: Path, mib: int) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bench", "hidden_size": 1024}))
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# bench\n")
    block = os.urandom(1 << 20)
    with (folder / "model.safetensors").open("wb") as fh:
        for _ in range(mib):
            fh.write(block)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_offline(cache_hub: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_CACHE=str(cache_hub), HF_HUB_OFFLINE="1")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", READ], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


async def fetch(root: Path, url: str) -> float:
    started = time.perf_counter()
    cache = WeightCache(root, url, 1 << 40)
    model = await cache.acquire(ModelRef("bench/model"))
    cache.release(model)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--containers", action="store_true", help="also time real container cold starts")
    parser.add_argument("--rollouts", type=int, default=0, help="also measure the cache over N rollouts")
    parser.add_argument("--rollout-containers", type=int, default=2, help="containers each version runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cove-bench-weights-"))
    try:
        make_model(work / "src", args.mib)
        store = Store(work / "reservoir")
        ingest.add_folder(store, "bench/model", work / "src")
        store.close()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "cove.reservoir", "serve", "--root", str(work / "reservoir"), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the reservoir did not start") from None
                    time.sleep(0.1)
            # (seconds to make the weights available, seconds to then load them in a fresh process)
            results: dict[str, list[tuple[float, float]]] = {"cold": [], "cached": [], "volume copy": []}
            for index in range(args.rounds):
                root = work / f"cache-{index}"
                fetch_s = asyncio.run(fetch(root, url))
                results["cold"].append((fetch_s, read_offline(root / "hub")))
                hit_s = asyncio.run(fetch(root, url))
                results["cached"].append((hit_s, read_offline(root / "hub")))
                started = time.perf_counter()
                volume = work / f"volume-{index}"
                shutil.copytree(root / "hub", volume, symlinks=False)  # each container's own copy
                results["volume copy"].append((time.perf_counter() - started, read_offline(volume)))
                shutil.rmtree(volume)
                shutil.rmtree(root)
        finally:
            server.terminate()
            server.wait(10)
        print(f"weights: {args.mib} MiB safetensors + config, {args.rounds} rounds, loopback, medians in s")
        print(f"  {'':12s} {'available':>10s} {'load':>8s} {'total':>8s}")
        for name, pairs in results.items():
            ready = statistics.median(p[0] for p in pairs)
            load = statistics.median(p[1] for p in pairs)
            total = statistics.median(p[0] + p[1] for p in pairs)
            print(f"  {name:12s} {ready:10.3f} {load:8.3f} {total:8.3f}")
        if args.containers:
            import _weights_containers

            measured = _weights_containers.run(work / "src", args.rounds)
            _weights_containers.report(args.mib, args.rounds, measured)
        if args.rollouts:
            import _weights_containers

            rolled = _weights_containers.rollout(work / "src", args.rollout_containers, args.rollouts)
            _weights_containers.report_rollout(args.mib, rolled)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
