"""Raw mount-namespace calls through libc, for the cgroup "hybrid" fix.

crun 1.8 refuses hosts that mount cgroup v1 controllers plus a cgroup2 tree at
``/sys/fs/cgroup/unified`` ("hybrid" mode). The fix changes nothing on the
host: the thread that launches crun moves into a private mount namespace and
lazily unmounts the cgroup2 tree there; every crun it spawns inherits that
view and sees a plain cgroup v1 host. Doing it in-process (about 0.1 ms, once
per thread) is cheaper than wrapping every crun in ``unshare -m`` (an extra
exec of a few ms per start).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

_libc: ctypes.CDLL | None = None
_local = threading.local()


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def unshare_mounts() -> None:
    """Give the calling thread a private copy of the mount table (nothing propagates back)."""
    lib = _lib()
    _check(lib.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(lib.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")


def lazy_unmount(path: str) -> None:
    _check(_lib().umount2(os.fsencode(path), MNT_DETACH), f"umount2({path}, MNT_DETACH)")


def hide_in_private_namespace(path: str) -> bool:
    """Once per thread: enter a private mount namespace and detach ``path`` there.

    Returns True when this call did the work. Mount namespaces belong to
    threads, so each thread that spawns crun needs its own call; the worker
    spawns from its event-loop thread only, so in practice it happens once.
    """
    if getattr(_local, "done", False):
        return False
    unshare_mounts()
    lazy_unmount(path)
    _local.done = True
    return True
