"""``wrk``, a load generator the gateway did not write, driving one JSON POST: its numbers as one line.

Benchmarks print this line next to their own load generator's, so a reader can
compare the two measurements of the same route in the same run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path


def wrk_post(url: str, token: str, body: str, concurrency: int, seconds: float, threads: int | None = None) -> str:
    """Requests/s, p50, p99 and non-2xx answers of ``wrk`` POSTing ``body`` to ``url``, or why it did not run."""
    return wrk_post_counted(url, token, body, concurrency, seconds, threads)[0]


def wrk_post_counted(
    url: str, token: str, body: str, concurrency: int, seconds: float, threads: int | None = None
) -> tuple[str, int]:
    """:func:`wrk_post`'s line, and how many requests wrk made (0 when it did not run)."""
    if shutil.which("wrk") is None:
        return "wrk not installed", 0
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            f"wrk.method = \"POST\"\nwrk.body = '{body}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        )
    threads = threads or min(2, concurrency)
    command = ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds:g}s", "--latency"]
    try:
        done = subprocess.run([*command, "-s", script.name, url], capture_output=True, text=True, check=False)
    finally:
        Path(script.name).unlink()
    made = re.search(r"(\d+) requests in", done.stdout)
    return _summary(done, f"wrk -t{threads} c={concurrency:<3}"), int(made.group(1)) if made else 0


def wrk_get(url: str, concurrency: int, seconds: float) -> str:
    """Requests/s, p50, p99 and non-2xx answers of ``wrk`` GETting ``url``, or why it did not run."""
    if shutil.which("wrk") is None:
        return "wrk not installed"
    command = ["wrk", "-t", str(min(2, concurrency)), "-c", str(concurrency), "-d", f"{seconds:g}s", "--latency"]
    done = subprocess.run([*command, url], capture_output=True, text=True, check=False)
    return _summary(done, f"wrk   c={concurrency:<3}")


def _summary(done: subprocess.CompletedProcess[str], label: str) -> str:
    """One line from wrk's report: requests/s, p50, p99 and non-2xx answers, or why it did not run."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    p50 = re.search(r"50%\s+([\d.]+\w+)", done.stdout)
    p99 = re.search(r"99%\s+([\d.]+\w+)", done.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if rps is None:
        return f"wrk failed: {done.stderr.strip() or done.stdout.strip()}"
    return (
        f"{label} {float(rps.group(1)):>7.0f} req/s  p50 {p50.group(1) if p50 else '?':>8}  "
        f"p99 {p99.group(1) if p99 else '?':>8}  non-2xx {errors.group(1) if errors else 0}"
    )
