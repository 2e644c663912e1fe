"""Host uid ranges for user namespaces, one range per running container.

Each container's root maps to its own block of 65 536 host uids, so two
containers never share a uid on the host: files one writes are not the
other's, and ``RLIMIT_NPROC`` counts each container separately. A block is
held by an ``flock`` on a small file for the container's life, which also
keeps several workers on one host from handing out the same block; the lock
dies with the process that held it, so a crashed worker leaks nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
from pathlib import Path

from .oci import ID_RANGE

FIRST_HOST_ID = 100_000
SLOTS = 4096


class UidLease:
    """One held block: ``host_id`` is the host uid (and gid) of the container's root."""

    def __init__(self, slot: int, fd: int) -> None:
        self.slot = slot
        self.host_id = FIRST_HOST_ID + slot * ID_RANGE
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the flock
            self._fd = None


class UidAllocator:
    """Hands out free blocks, locked under ``lock_dir`` (shared by every worker of the host)."""

    def __init__(self, lock_dir: Path = Path("/run/cove/uids")) -> None:
        self.lock_dir = lock_dir

    def acquire(self) -> UidLease:
        self.lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        start = random.randrange(SLOTS)  # spreading, not security
        for step in range(SLOTS):
            slot = (start + step) % SLOTS
            fd = os.open(self.lock_dir / f"{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return UidLease(slot, fd)
        raise RuntimeError(f"all {SLOTS} user-namespace uid blocks are in use")
