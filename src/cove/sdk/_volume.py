"""``Volume``: a named folder that persists and is shared by a workspace's containers.

Only a name and where to mount it; the files live on the server under
``$COVE_HOME/volumes/<workspace>/<name>`` and are reached with ``cove volume``
or from inside containers at ``mount_path``. Imported in containers, so stdlib
only.
"""

from __future__ import annotations

from cove._wire.frozen import Frozen

from .._wire.names import check_mount_path, check_name


class Volume(Frozen):
    """``Volume("models", "/models")``: mount the workspace's volume ``models`` at ``/models``."""

    __slots__ = ("mount_path", "name")
    name: str
    mount_path: str

    def __init__(self, name: str, mount_path: str) -> None:
        self._init(name=check_name("volume", name), mount_path=check_mount_path(mount_path))
