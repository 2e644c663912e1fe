"""Where volumes live on a host, and who may write them.

A volume is a folder ``$COVE_HOME/volumes/<workspace id>/<name>``: it
survives restarts and is shared by every container of its workspace that
mounts it. Ownership: under crun each container's root is a different host
uid (see ``runtime/_uids.py``), so files cannot be shared by owner. Instead
a volume folder belongs to the host group ``VOLUME_GID`` with the setgid
bit (mode 2775): new files inherit that group, containers that mount a
volume get the group mapped in as a supplementary group and run with umask
002, so what one container writes the next can change. Other workspaces'
containers never have the folder mounted, so the shared group gives them
nothing.

A volume folder becomes a writable mount, so before it is used its path is
resolved: it must be exactly ``volumes/<workspace id>/<name>`` of this home,
never a symlink (to ``/`` or to another workspace's volume) put in its place.
"""

from __future__ import annotations

import os
from pathlib import Path

from .safepath import UnsafePath

VOLUME_GID = 99_999  # host gid owning volume folders (below the uid blocks containers use)
CONTAINER_VOLUME_GID = 65_536  # the same group as seen inside a container (just above its 65 536 ids)
VOLUME_DIR_MODE = 0o2775


def volumes_root(home: Path) -> Path:
    return home / "volumes"


def volume_path(home: Path, workspace_id: str, name: str) -> Path:
    return volumes_root(home) / workspace_id / name


def ensure_volume(home: Path, workspace_id: str, name: str) -> Path:
    """Create the volume folder with its shared group, once; returns its path (checked by ``confined``)."""
    path = volume_path(home, workspace_id, name)
    if not os.path.lexists(path):
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(path, 0, VOLUME_GID)
        path.chmod(VOLUME_DIR_MODE)
    return confined(home, workspace_id, name)


def confined(home: Path, workspace_id: str, name: str) -> Path:
    """The volume's folder with symlinks resolved; ``UnsafePath`` unless it is the workspace's own.

    The home itself may be reached through a link; below ``volumes`` neither
    the workspace's folder nor the volume's may be one.
    """
    expected = Path(os.path.realpath(volumes_root(home))) / workspace_id / name
    resolved = Path(os.path.realpath(volume_path(home, workspace_id, name)))
    if resolved != expected or not resolved.is_dir():
        raise UnsafePath(
            f"volume {name!r} is refused: its folder {volume_path(home, workspace_id, name)} leads to {resolved}, "
            f"not to a folder of its own under {volumes_root(home)}"
        )
    return resolved


def file_owner() -> tuple[int, int] | None:
    """Owner for files the gateway writes into a volume: root and the volume group (None when not root)."""
    return (0, VOLUME_GID) if os.geteuid() == 0 else None
