"""Per-image file locks, so two Cove processes sharing a home never build the same image at once.

``fcntl.flock`` is released by the kernel when its holder dies, so a crashed
build never leaves a lock behind. Waiting polls with ``LOCK_NB`` instead of
blocking a thread: a cancelled waiter then simply stops, and cannot acquire
the lock later on a thread nobody is watching.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

_POLL_SECONDS = 0.1


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.asynccontextmanager
async def hold(path: Path, on_wait: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[None]:
    """Hold the lock at ``path``, waiting (without blocking the loop) while another process has it."""
    fd = _open(path)
    try:
        if not _try(fd):
            if on_wait is not None:
                await on_wait()
            while not _try(fd):
                await asyncio.sleep(_POLL_SECONDS)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def try_hold(path: Path) -> Iterator[bool]:
    """Hold the lock if nobody else does; yields whether it was got (for cleanup that must not wait)."""
    fd = _open(path)
    try:
        yield _try(fd)
    finally:
        os.close(fd)
