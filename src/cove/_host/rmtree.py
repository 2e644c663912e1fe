"""Removing a folder tree of any depth, without recursion and without following symlinks.

Trees that tenants build (volumes, a sandbox's or a container's work dir)
can be nested far deeper than Python's recursion limit and than the number
of descriptors a process may hold open, so ``shutil.rmtree`` (recursive up to
Python 3.12) and any walk keeping one descriptor per level both fail on them.
Here the tree is flattened instead: the top folder stays open, and each
folder inside it has its entries renamed up into the top before it is
removed. Two descriptors are open at a time, every entry is renamed at most
once, and a symlink is only ever renamed or unlinked, never followed.
Stdlib only: the sandbox agent imports it inside containers.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
from collections.abc import Iterator

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Renaming onto one of these means the temporary name is taken by something that cannot be replaced.
_NAME_TAKEN = frozenset({errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR})


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove ``path``: a folder with everything in it, or a file or symlink; a missing path is fine."""
    parent, name = os.path.split(os.path.abspath(path))
    fd = os.open(parent, _DIR_FLAGS)
    try:
        remove_tree_at(fd, name)
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def remove_tree_at(parent_fd: int, name: str) -> None:
    """Remove the entry ``name`` of the open folder ``parent_fd``, with everything in it."""
    if not stat.S_ISDIR(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    top = _open_writable(parent_fd, name)
    try:
        _empty(top)
    finally:
        os.close(top)
    os.rmdir(name, dir_fd=parent_fd)


def _empty(top: int) -> None:
    """Delete everything inside the open folder ``top``."""
    fresh = (f".cove-rm-{n}" for n in itertools.count())
    while pending := os.listdir(top):  # listed again in case something appeared meanwhile
        while pending:
            name = pending.pop()
            try:
                info = os.stat(name, dir_fd=top, follow_symlinks=False)
                if not stat.S_ISDIR(info.st_mode):
                    os.unlink(name, dir_fd=top)
                    continue
                inner = _open_writable(top, name)
                try:
                    for entry in os.listdir(inner):
                        pending.append(_move_up(inner, entry, top, fresh))
                finally:
                    os.close(inner)
                os.rmdir(name, dir_fd=top)
            except FileNotFoundError:
                continue  # removed by someone else meanwhile


def _open_writable(parent_fd: int, name: str) -> int:
    """Open a folder to take entries out of it, granting ourselves the rights a read-only folder lacks."""
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    with contextlib.suppress(OSError):  # not ours to change: removal fails with a clear error later
        os.fchmod(fd, 0o700)
    return fd


def _move_up(source: int, name: str, top: int, fresh: Iterator[str]) -> str:
    """Rename ``name`` out of ``source`` into ``top`` under a name not in use there; returns that name."""
    granted = False
    while True:
        target = next(fresh)
        try:
            os.rename(name, target, src_dir_fd=source, dst_dir_fd=top)
            return target
        except PermissionError:
            if granted:
                raise
            # Moving a folder to another parent rewrites its '..' entry: it must be writable itself.
            with contextlib.suppress(OSError):
                os.close(_open_writable(source, name))
            granted = True
        except OSError as exc:
            if exc.errno not in _NAME_TAKEN:
                raise
