"""Functions that print, for the tests of the logs ``.remote`` shows its caller."""

from __future__ import annotations

import sys
import time

from cove import QueueDepthAutoscaler, function


@function
def chatty(tag: str, lines: int = 1) -> str:
    for i in range(lines):
        print(f"{tag} line {i}")
    print(f"{tag} to stderr", file=sys.stderr)
    return tag


@function
def chatty_quiet(x: int) -> int:
    return x + 1


@function(retries=0)
def chatty_fails(tag: str) -> None:
    print(f"{tag} before failing")
    raise ValueError(tag)


@function(concurrent_requests=4, autoscaler=QueueDepthAutoscaler(max_containers=1))
def chatty_slow(tag: str) -> str:
    """Prints over a while, so two calls in its one container overlap."""
    for i in range(5):
        print(f"{tag} step {i}")
        time.sleep(0.1)
    return tag


@function(timeout=60)
def chatty_long(tag: str, steps: int = 6, pause: float = 0.4) -> str:
    """Prints a line now and then for a few seconds: its caller sees each line while it runs."""
    for i in range(steps):
        print(f"{tag} step {i}", flush=True)
        time.sleep(pause)
    print(f"{tag} done")
    return tag


@function(retries=0, timeout=60)
def chatty_long_fails(tag: str) -> None:
    for i in range(4):
        print(f"{tag} step {i}")
        time.sleep(0.4)
    raise RuntimeError(f"{tag} gave up")
