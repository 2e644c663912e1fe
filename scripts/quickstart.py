"""What ``make run`` does: start Cove, deploy the example, call it, report latencies.

Runs against the server of ``$COVE_HOME`` (started in the background if it is
not running), so running it twice reuses the server and the built image.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "hello" / "app.py"
COVE = [sys.executable, "-m", "cove"]


def cove(*args: str) -> dict:
    """Run a CLI command with --json and return its parsed output."""
    done = subprocess.run([*COVE, *args, "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"cove {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout)


def main() -> None:
    port = os.environ.get("COVE_PORT", "8474")
    server = cove("server", "--background", "--port", port)
    print(f"server: {server['url']} ({'started' if server['started'] else 'already running'})")

    print("deploying examples/hello/app.py:predict (the first build downloads numpy) ...")
    subprocess.run([*COVE, "deploy", f"{EXAMPLE}:predict"], check=True)
    deployment = cove("deployment", "list")
    hello = next(d for d in deployment if d["name"] == "predict")

    # Measure a real cold start: stop any container a previous run left warm.
    for container in cove("ps"):
        if container["deployment"] == "predict":
            cove("stop", container["id"])
    deadline = time.monotonic() + 30
    while any(c["deployment"] == "predict" for c in cove("ps")) and time.monotonic() < deadline:
        time.sleep(0.1)

    home = Path(os.environ.get("COVE_HOME") or Path.home() / ".local/share/cove")
    token = os.environ.get("COVE_TOKEN") or (home / "admin-token").read_text().strip()
    body = {"x": [1.0, 2.5, 3.1, 4.8, 5.2, 7.9, 8.1, 9.7]}
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
        started = time.perf_counter()
        response = http.post(hello["url"], json=body)
        cold_ms = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        warm = []
        for _ in range(50):
            started = time.perf_counter()
            http.post(hello["url"], json=body).raise_for_status()
            warm.append((time.perf_counter() - started) * 1000)

    print(f"\nPOST {hello['url']}\n{json.dumps(body)}\n→ {json.dumps(response.json(), indent=2)}")
    print(f"\ncold start (no container → response): {cold_ms:.1f} ms")
    print(f"warm request: p50 {statistics.median(warm):.2f} ms, max {max(warm):.2f} ms over {len(warm)} calls")
    print(
        f'\ntry it:\n  curl -H "Authorization: Bearer $(cat {home}/admin-token)" '
        f"-d '{json.dumps(body)}' {hello['url']}"
    )
    print("stop the server with: .venv/bin/cove server --stop")


if __name__ == "__main__":
    main()
