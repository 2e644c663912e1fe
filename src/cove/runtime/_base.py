"""The engine-neutral interface of a runtime."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from .oci import Device


class StartError(Exception):
    """A container could not be started; the message says why, for the user."""


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    """What an engine needs to start one runner.

    ``python`` is the image environment's interpreter and ``venv`` its root;
    ``pylib_dir`` holds only a ``cove`` link to Cove's package, so the runner is
    importable without any of Cove's third-party dependencies.
    """

    container_id: str
    python: Path
    venv: Path | None
    code_dir: Path
    work_dir: Path
    pylib_dir: Path
    module: str
    function: str
    kind: str = "endpoint"
    concurrency: int = 1
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cpu_millis: int = 1000
    memory_mib: int = 512
    pids_limit: int = 0  # 0: the engine's default; ignored by engines without cgroups
    # A prepared root filesystem (e.g. a debootstrap base with the image's system packages) for
    # isolated engines; None: the engine's default root. Ignored by the process engine.
    rootfs: Path | None = None
    # Read-only system layers stacked over ``rootfs`` (topmost first), from images with
    # system packages or build commands; mounted as one overlay. Needs ``rootfs``.
    layers: tuple[Path, ...] = ()
    # Persistent folders of the workspace: (host folder, path inside, volume name). Isolated
    # engines bind-mount them read-write; the process engine can only point at them (COVE_VOLUME_*).
    volumes: tuple[tuple[Path, str, str], ...] = ()
    # Decrypted secret variables. Kept apart from ``env`` so isolated engines can hand them over
    # through a memfd (fd 5, ``COVE_SECRET_FD``) instead of writing them into config.json on disk.
    secret_env: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    # "host:port" destinations an isolated container may reach (through a veth and an nftables
    # filter); empty: a network namespace with loopback only. Ignored by the process engine.
    network: tuple[str, ...] = ()
    # GPU access (see cove.gpu): device nodes the container may open and read-only host files
    # (driver libraries, the MPS pipe folder: (host path, path inside, writable)). Isolated engines
    # only; the process engine sees every device of the host anyway.
    devices: tuple[Device, ...] = ()
    extra_mounts: tuple[tuple[Path, Path, bool], ...] = ()


class ContainerHandle(Protocol):
    """A started container, as seen by the worker."""

    @property
    def pid(self) -> int:
        """The runner's pid on this host (the leader of the container's process group)."""

    @property
    def returncode(self) -> int | None:
        """``None`` while running; then the exit code, negative for a signal."""

    @property
    def stdout(self) -> asyncio.StreamReader:
        """The runner's standard output."""

    @property
    def stderr(self) -> asyncio.StreamReader:
        """The runner's standard error."""

    @property
    def timings(self) -> Mapping[str, float]:
        """Per-phase durations in ms: ``spawn_ms`` (and the engine's own phases) and, once ready, ``ready_ms``."""

    @property
    def exit_reason(self) -> str | None:
        """After the exit: why, when the code alone does not say (``"OOMKilled: ..."``); else None."""

    async def wait_ready(self) -> bool:
        """True once the runner has loaded the user's code; False if it exited first."""

    async def wait(self) -> int:
        """Wait for the exit; every process of the container is gone when this returns."""

    def kill(self) -> None:
        """Kill every process of the container at once."""

    async def stop(self, grace: float) -> int:
        """Ask to stop (SIGTERM), kill after ``grace`` seconds, return the exit code."""


class Runtime(Protocol):
    """An engine that runs containers."""

    name: str
    isolated: bool

    async def start(self, spec: LaunchSpec, listener: socket.socket) -> ContainerHandle:
        """Start the runner with ``listener`` (bound and listening) as its fd 3.

        The caller keeps ownership of ``listener`` and should close its copy
        once this returns, so the socket dies with the container.
        """
