"""Generators the streaming tests deploy: endpoints and functions that yield their results."""

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator

from cove import QueueDepthAutoscaler, Volume, endpoint, function

# Where a generator writes, on its way out, why it stopped and how many items it made.
MARKS = Volume("stream-marks", "/marks")
ONE = QueueDepthAutoscaler(max_containers=1)


class Broken(Exception):
    """Raised by a generator midway; re-raised in the caller of ``remote_gen``."""


def _marked(token: str, item: str, pause: float = 0.0) -> Iterator[str]:
    produced = 0
    why = "finished"
    try:
        while True:
            yield item
            produced += 1
            time.sleep(pause)
    except GeneratorExit:
        why = "GeneratorExit"
        raise
    finally:
        with open(f"{MARKS.mount_path}/{token}", "w") as mark:
            mark.write(f"{why} {produced}")


@endpoint(autoscaler=ONE)
def tick(pause: float = 2.0) -> Iterator[dict[str, float]]:
    yield {"i": 0, "at": time.time()}
    time.sleep(pause)
    yield {"i": 1, "at": time.time()}


@endpoint
def words(text: str = "hello streaming world") -> Iterator[str]:
    for word in text.split():
        yield word + " "


@endpoint
def blobs() -> Iterator[bytes]:
    yield b"\x00\x01"
    yield b""  # nothing to send: skipped, not a last chunk
    yield b"\xff"


@endpoint
async def launch(n: int = 3) -> AsyncIterator[object]:
    for i in range(n, 0, -1):
        yield i
        await asyncio.sleep(0.01)
    yield "liftoff\nwith two lines"


@endpoint
def breaks(after: int = 2) -> Iterator[dict[str, int]]:
    for i in range(after):
        yield {"i": i}
    raise ValueError(f"broke after {after}")


@endpoint
def refuses() -> Iterator[int]:
    raise PermissionError("no items for you")
    yield 0  # a generator all the same


@endpoint(volumes=[MARKS], autoscaler=ONE)
def forever(token: str, size: int = 16) -> Iterator[str]:
    yield from _marked(token, "x" * size + "\n")


@endpoint(volumes=[MARKS], autoscaler=ONE)
async def forever_async(token: str) -> AsyncIterator[str]:
    produced = 0
    why = "finished"
    try:
        while True:
            yield "y" * 16 + "\n"
            produced += 1
            await asyncio.sleep(0)
    except GeneratorExit:
        why = "GeneratorExit"
        raise
    finally:
        with open(f"{MARKS.mount_path}/{token}", "w") as mark:
            mark.write(f"{why} {produced}")


@endpoint(volumes=[MARKS], timeout=2)
def drip(token: str) -> Iterator[str]:
    """An item every half second, for ever: the deployment's timeout ends it."""
    yield from _marked(token, "drop", pause=0.5)


@function(autoscaler=ONE)
def numbers(n: int, pause: float = 0.0) -> Iterator[int]:
    for i in range(n):
        print(f"making {i}", flush=True)
        yield i
        time.sleep(pause)


@function
async def letters(word: str) -> AsyncGenerator[str, None]:
    for letter in word:
        yield letter
        await asyncio.sleep(0)


@function
def fails_midway() -> Iterator[int]:
    yield 1
    raise Broken("midway")


@function(volumes=[MARKS], autoscaler=ONE)
def endless(token: str) -> Iterator[str]:
    yield from _marked(token, "x" * 16 + "\n")


@function
def plain(x: int) -> int:
    return x


@function
def doubled(n: int) -> Iterator[int]:
    """Streams another function's items on, from inside its own container."""
    for i in numbers.remote_gen(n):
        yield 2 * i
