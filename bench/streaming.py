"""Streaming: time to the first item of a generator endpoint against the whole answer of a plain one.

    python bench/streaming.py [--calls N] [--count N] [--gap-ms MS]

Starts its own ``cove server`` on a free loopback port and deploys
``bench/apps/streaming/app.py``: ``streamed`` yields ``count`` items with
``gap-ms`` of work before each but the first; ``collected`` makes the same
items and returns them as a list. After a warm-up call of each (warm
containers), ``calls`` sequential calls of each through the gateway, and
prints p50/p95 of: the stream's first item (the first chunk read), the
stream's last item, and the plain endpoint's whole answer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import summary
from _server import CoveServer

APP = Path(__file__).resolve().parent / "apps" / "streaming" / "app.py"


def streamed(cove: CoveServer, body: dict[str, float]) -> tuple[float, float, int]:
    """(ms to the first chunk, ms to the end, items) of one call of the generator endpoint."""
    started = time.perf_counter()
    first = 0.0
    lines = 0
    with cove.http.stream("POST", "/endpoint/streamed", json=body) as reply:
        if reply.status_code != 200:
            raise RuntimeError(f"streamed answered {reply.status_code}: {reply.read()!r}")
        for chunk in reply.iter_raw():
            if not first:
                first = (time.perf_counter() - started) * 1000
            lines += chunk.count(b"\n")
    return first, (time.perf_counter() - started) * 1000, lines


def collected(cove: CoveServer, body: dict[str, float]) -> tuple[float, int]:
    """(ms to the whole answer, items) of one call of the plain endpoint."""
    started = time.perf_counter()
    reply = cove.http.post("/endpoint/collected", json=body)
    if reply.status_code != 200:
        raise RuntimeError(f"collected answered {reply.status_code}: {reply.text}")
    return (time.perf_counter() - started) * 1000, len(reply.json())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50, help="calls of each endpoint")
    parser.add_argument("--count", type=int, default=20, help="items per call")
    parser.add_argument("--gap-ms", type=float, default=10.0, help="work before each item after the first")
    args = parser.parse_args()
    body = {"count": args.count, "gap_ms": args.gap_ms}
    cove = CoveServer()
    try:
        for name in ("streamed", "collected"):
            cove.cli("deploy", f"{APP}:{name}")
        for _ in range(3):  # containers started and warm; not timed
            streamed(cove, body)
            collected(cove, body)
        firsts, lasts, wholes = [], [], []
        for _ in range(args.calls):
            first, last, items = streamed(cove, body)
            whole, returned = collected(cove, body)
            if items != args.count or returned != args.count:
                raise RuntimeError(f"expected {args.count} items, got {items} streamed and {returned} returned")
            firsts.append(first)
            lasts.append(last)
            wholes.append(whole)
    finally:
        cove.close()
    print(f"\n== {args.count} items, {args.gap_ms:g} ms of work before each after the first; {args.calls} calls")
    print(f"streamed, first item     {summary(firsts)}")
    print(f"streamed, last item      {summary(lasts)}")
    print(f"returned as one answer   {summary(wholes)}")


if __name__ == "__main__":
    main()
