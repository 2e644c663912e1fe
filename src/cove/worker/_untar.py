"""Unpacking an image part with the ``tar`` extraction filter, also on Pythons that lack filters.

Python 3.11.4 added extraction filters (PEP 706); Debian 12's own Python 3.11.2, which the Cove image on
Kubernetes runs, has none and refuses the ``filter`` argument. There the same rules are applied here before a
plain ``extractall``: names lose their leading slashes, nothing (file or hard link target) may land outside the
folder once symlinks already in it are followed, and setuid, setgid, sticky and group/other write bits are cleared.
Absolute symlinks are kept, as the ``tar`` filter keeps them (a venv's interpreter link).
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

_CLEARED = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH


def _inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def tar_filtered(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """The member as the ``tar`` filter would pass it; a ``TarError`` for one it would refuse."""
    root = os.path.realpath(dest)
    name = member.name.lstrip("/" + os.sep)
    if os.path.isabs(name) or not _inside(root, os.path.join(root, name)):
        raise tarfile.TarError(f"{member.name!r} would be extracted outside the destination")
    if member.islnk() and not _inside(root, os.path.join(root, member.linkname.lstrip("/"))):
        raise tarfile.TarError(f"{member.name!r} links to {member.linkname!r}, outside the destination")
    member.name = name
    if member.isfile() or member.isdir() or member.islnk():
        member.mode &= ~_CLEARED & 0o7777
    return member


def extract_tar(tar: tarfile.TarFile, dest: Path) -> None:
    """``tar.extractall(dest, filter="tar")``, on every Python 3.11."""
    if hasattr(tarfile, "tar_filter"):
        tar.extractall(dest, filter="tar")
        return
    # Checked one member at a time as it is extracted, so a symlink an earlier member made counts.
    for member in tar:
        tar.extract(tar_filtered(member, str(dest)), dest)
