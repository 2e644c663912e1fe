"""File operations confined to one folder, safe against ``..`` and symlinks.

Used where an outside party names a path inside a folder it owns: volume
files through the gateway, a sandbox's work dir through its agent. Checking
a resolved path and then opening it races with whoever can create symlinks
in that folder (the container itself); instead every component is opened
relative to its parent's descriptor with ``O_NOFOLLOW``, so a symlink
anywhere on the way fails the operation instead of leading out. Writes go to
a temporary file renamed into place, so a reader never sees half a file.
Stdlib only: the sandbox agent imports it inside containers.
"""

from __future__ import annotations

import contextlib
import os
import stat

from .rmtree import remove_tree_at

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NAME_MAX = 255  # bytes in one path component (Linux file systems)
PATH_MAX = 4096  # bytes in a whole path, its terminating NUL included (Linux)


class UnsafePath(ValueError):
    """The path is absolute, climbs with ``..``, holds a NUL, or crosses a symlink."""


def split(path: str) -> list[str]:
    """The components of a relative path; ``""`` and ``"."`` mean the folder itself."""
    if not isinstance(path, str) or "\0" in path:
        raise UnsafePath("a path must be text without NUL characters")
    problem = length_problem(path)
    if problem:
        raise UnsafePath(problem)
    if path.startswith("/"):
        raise UnsafePath(f"{path!r} is absolute; give a path relative to the folder")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(f"{path!r} climbs out with '..'")
    return parts


def length_problem(path: str) -> str | None:
    """Why ``path`` cannot exist on Linux (a component over ``NAME_MAX`` or the whole over ``PATH_MAX`` bytes), or None.

    Checked up front so such a path is refused with a message that names the
    limit, instead of failing deep inside a system call.
    """
    try:
        encoded = os.fsencode(path)
    except UnicodeError:
        return f"{path!r} cannot be encoded as a file name"
    if len(encoded) >= PATH_MAX:
        return f"the path is {len(encoded)} bytes long; the limit is {PATH_MAX - 1}"
    for part in encoded.split(b"/"):
        if len(part) > NAME_MAX:
            shown = os.fsdecode(part[:40])
            return f"the path component {shown!r}... is {len(part)} bytes long; the limit is {NAME_MAX}"
    return None


def _open_dir(root: str, parts: list[str], create: bool = False, mode: int = 0o775) -> int:
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, mode, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (40, 20):  # ELOOP (a symlink), ENOTDIR
                    raise UnsafePath(f"{part!r} is a symlink or not a folder") from None
                raise
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_read(root: str, path: str) -> int:
    """A read-only descriptor of a regular file inside ``root``."""
    parts = split(path)
    if not parts:
        raise UnsafePath("a file path is needed")
    parent = _open_dir(root, parts[:-1])
    try:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=parent)
        except OSError as exc:
            if exc.errno == 40:
                raise UnsafePath(f"{path!r} is a symlink") from None
            raise
    finally:
        os.close(parent)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(f"{path!r} is not a regular file")
    return fd


def write(
    root: str,
    path: str,
    chunks: Iterable[bytes],
    *,
    mode: int = 0o664,
    owner: tuple[int, int] | None = None,
) -> int:
    """Write a file atomically (temporary file, then rename); parents are created. Returns the size."""
    parts = split(path)
    if not parts:
        raise UnsafePath("a file path is needed")
    parent = _open_dir(root, parts[:-1], create=True)
    short = os.fsdecode(os.fsencode(parts[-1])[:100])  # in bytes: the temporary name must fit NAME_MAX too
    tmp = f".{short}.cove-tmp-{os.getpid()}-{os.urandom(4).hex()}"
    size = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
        try:
            with os.fdopen(fd, "wb", closefd=False) as f:
                for chunk in chunks:
                    f.write(chunk)
                    size += len(chunk)
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.rename(tmp, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=parent)
        raise
    finally:
        os.close(parent)
    return size


def listing(root: str, path: str = "") -> list[dict[str, object]]:
    """Entries of a folder inside ``root``: name, type (file, dir, link, other), size, mtime."""
    fd = _open_dir(root, split(path))
    try:
        entries = []
        for name in sorted(os.listdir(fd)):
            with contextlib.suppress(FileNotFoundError):
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                kind = (
                    "dir"
                    if stat.S_ISDIR(info.st_mode)
                    else "file"
                    if stat.S_ISREG(info.st_mode)
                    else "link"
                    if stat.S_ISLNK(info.st_mode)
                    else "other"
                )
                entries.append({"name": name, "type": kind, "size": info.st_size, "mtime": info.st_mtime})
        return entries
    finally:
        os.close(fd)


def remove(root: str, path: str, recursive: bool = False) -> None:
    """Delete a file, a link (not its target) or, with ``recursive``, a folder."""
    parts = split(path)
    if not parts:
        raise UnsafePath("refusing to remove the folder itself")
    parent = _open_dir(root, parts[:-1])
    try:
        info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            if not recursive:
                raise IsADirectoryError(f"{path!r} is a folder; remove it recursively")
            remove_tree_at(parent, parts[-1])
        else:
            os.unlink(parts[-1], dir_fd=parent)
    finally:
        os.close(parent)


def read_chunks(fd: int, size: int = 1 << 20) -> Iterator[bytes]:
    """The file's bytes in chunks; closes ``fd`` at the end."""
    try:
        while chunk := os.read(fd, size):
            yield chunk
    finally:
        os.close(fd)


def resolve_within(path: str, roots: Iterable[str]) -> str | None:
    """``path`` with every symlink resolved, if it is one of ``roots`` or lies below one; else None.

    For host paths that become mounts or are read on an outside party's
    behalf: what counts is where the path leads, not how it is spelled, so a
    link planted anywhere on the way cannot point out of the allowed folders.
    The roots are resolved too (an operator may name a folder through a link).
    """
    resolved = os.path.realpath(path)
    for root in roots:
        real_root = os.path.realpath(root)
        if resolved == real_root or resolved.startswith(real_root.rstrip("/") + "/"):
            return resolved
    return None
