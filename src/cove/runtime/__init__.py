"""Runtimes: engines that start a container's runner process and stop it.

One interface (:class:`Runtime`), several engines: ``process`` (here: a plain
subprocess, no isolation) and, later, ``crun`` (an OCI container). Engines
know nothing about tasks or HTTP: they receive a listening socket, start the
runner with it as fd 3 and a readiness pipe as fd 4, and report the exit.
"""

from ._base import ContainerHandle, LaunchSpec, Runtime, StartError
from ._process import ProcessRuntime
from ._sockets import UNIX_PATH_MAX, open_unix_listener

__all__ = [
    "UNIX_PATH_MAX",
    "ContainerHandle",
    "LaunchSpec",
    "ProcessRuntime",
    "Runtime",
    "StartError",
    "open_unix_listener",
]
