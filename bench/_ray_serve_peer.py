"""Ray Serve answering the benchmark's JSON echo, run as its own process by ``serve_vs_ray.py``.

    python bench/_ray_serve_peer.py PORT MAX_ONGOING_REQUESTS

Starts a local Ray cluster, then deploys the echo with scale-to-zero autoscaling
and prints one JSON line per milestone on stdout (``deployed`` with the seconds
from ``serve.run`` to the first answered request), so the parent can drive the
same load at it as at Cove. Then, for each ``zero`` line on stdin, it waits until
the autoscaler has removed every replica and answers ``{"zero": true}``.
"""

from __future__ import annotations

import json
import os
import sys
import time

import httpx
import ray  # type: ignore[import-not-found]
from ray import serve  # type: ignore[import-not-found]


def main() -> None:
    port, max_ongoing = int(sys.argv[1]), int(sys.argv[2])
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})

    @serve.deployment(
        max_ongoing_requests=max_ongoing,
        autoscaling_config={
            "min_replicas": 0,
            "initial_replicas": 1,
            "max_replicas": 1,
            "downscale_delay_s": 1.0,
            "upscale_delay_s": 0.0,
        },
    )
    class Echo:
        async def __call__(self, request: object) -> dict[str, object]:
            body = await request.json()  # type: ignore[attr-defined]
            return {"x": body.get("x")}

    started = time.perf_counter()
    serve.run(Echo.bind(), route_prefix="/echo")
    url = f"http://127.0.0.1:{port}/echo"
    while True:
        try:
            if httpx.post(url, json={"x": 1}, timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    print(json.dumps({"deployed": time.perf_counter() - started, "pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        if line.strip() == "zero":
            while _replicas() > 0:
                time.sleep(0.1)
            print(json.dumps({"zero": True}), flush=True)


def _replicas() -> int:
    """Live replicas of the echo, from Serve's own status."""
    app = serve.status().applications.get("default")
    if app is None:
        return 0
    states = app.deployments["Echo"].replica_states
    return sum(count for state, count in states.items() if str(state).endswith("RUNNING"))


if __name__ == "__main__":
    main()
