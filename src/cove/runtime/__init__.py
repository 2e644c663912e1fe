"""Runtimes: engines that start a container's runner process and stop it.

One interface (:class:`Runtime`), several engines: ``crun`` (an OCI container
with namespaces, cgroups and seccomp; ``runc`` runs the same spec) and
``process`` (a plain subprocess, no isolation). :func:`select_runtime` picks
one. Engines know nothing about tasks or HTTP: they receive a listening socket, start the
runner with it as fd 3 and a readiness pipe as fd 4, and report the exit.
"""

from ._base import ContainerHandle, LaunchSpec, Runtime, StartError
from ._crun import CrunHandle, CrunRuntime
from ._overlay import mount_overlay, unmount
from ._process import ProcessRuntime
from ._rootfs import HostLibsBase, base_key, build_debootstrap_base, ensure_mount_point
from ._select import ENGINES, select_runtime
from ._sockets import BACKLOG, UNIX_PATH_MAX, open_unix_listener
from ._uids import FIRST_HOST_ID, SLOTS
from .oci import Device

__all__ = [
    "BACKLOG",
    "ENGINES",
    "FIRST_HOST_ID",
    "SLOTS",
    "UNIX_PATH_MAX",
    "ContainerHandle",
    "CrunHandle",
    "CrunRuntime",
    "Device",
    "HostLibsBase",
    "LaunchSpec",
    "ProcessRuntime",
    "Runtime",
    "StartError",
    "base_key",
    "build_debootstrap_base",
    "ensure_mount_point",
    "mount_overlay",
    "open_unix_listener",
    "select_runtime",
    "unmount",
]
