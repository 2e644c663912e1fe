"""A container root made of read-only layers: system layers over the Debian base.

The stack is one read-only overlay with no upper folder, mounted once per
worker for each distinct stack and shared by every container that uses it.
The container's root is read-only anyway (``/tmp`` and the work folder are
separate mounts), so a per-start tmpfs upper would only add mount work on the
start path without letting the container write anything more.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from ._overlay import mount_overlay
from ._rootfs import ensure_mount_points
from .oci import Mount


def stack_key(lowers: Sequence[Path]) -> str:
    """Names a mounted stack by its folders *and their inodes*.

    A layer removed by ``cove image gc`` and built again lives at the same
    path but is a new folder: an old mount of the same paths would still show
    the deleted tree, so the inode is part of the name.
    """
    parts = []
    for lower in lowers:
        stat = os.stat(lower)
        parts.append(f"{lower}\0{stat.st_dev}\0{stat.st_ino}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


class LayeredBase:
    """Base protocol of the crun engine (see ``_crun.Base``) for a stack of layers over a base root."""

    name = "layered"

    def __init__(self, mounts_dir: Path, rootfs: Path, layers: Sequence[Path]) -> None:
        self.lowers = [*layers, rootfs]
        self.root = mounts_dir / stack_key(self.lowers)

    def prepare(self) -> None:
        """Mount the stack unless this thread's mount view already has it.

        Called from the thread that spawns crun: on hybrid-cgroup hosts that
        thread has a private mount namespace, and only its children see the mount.
        """
        if os.path.ismount(self.root):
            return
        ensure_mount_points(self.lowers[-1])  # a base built by an older Cove lacks newer mount points
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        mount_overlay(self.root, self.lowers)

    def mounts(self) -> list[Mount]:
        return []

    def covers(self, python: Path) -> bool:
        """Whether the stack has its own file at ``python`` (the base's interpreter)."""
        relative = python.relative_to("/")
        return any((lower / relative).exists() for lower in self.lowers)
