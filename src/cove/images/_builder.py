"""Turning an image spec into a uv-built, relocatable, byte-compiled environment, once.

The image id is the hash of the spec, so a finished build is reused by every
deployment with the same spec. A build happens in a temporary folder and is
renamed into place only when complete; any failure removes that folder, so a
half-built environment is never visible. Within one process concurrent
requests for one id share a single build; across processes a file lock keeps
two servers on one home from building the same id side by side.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._home import Home
from ..sdk._image import image_id
from . import _layout, _lock
from ._errors import BuildError
from ._layout import BuiltImage
from ._python import Interpreter, find_interpreter
from ._uv import LogFn, UvFailed, run_uv, uv_environment

logger = logging.getLogger(__name__)

_CONTAINER_FIELDS = ("system_packages", "commands", "base_image")


class _SharedBuild:
    """One build in flight, and everyone who wants its log lines."""

    def __init__(self) -> None:
        self.listeners: list[LogFn] = []
        self.task: asyncio.Task[BuiltImage] | None = None

    async def log(self, line: str) -> None:
        for listener in list(self.listeners):
            try:
                await listener(line)
            except Exception:
                # One caller's broken log (a client that went away) must not
                # fail a build that others are waiting on.
                logger.warning("dropping an image build log listener that failed", exc_info=True)
                self.listeners.remove(listener)


class ImageBuilder:
    """Builds image specs into environments under ``home.images``.

    ``index_url``, when set (a reservoir), is the only package index uv may
    use. ``python_dirs`` are extra folders searched for ``python3.X``.
    """

    def __init__(self, home: Home, index_url: str | None = None, python_dirs: Sequence[Path] = ()) -> None:
        self.home = home
        self.index_url = index_url
        self.python_dirs = tuple(Path(p) for p in python_dirs)
        self._builds: dict[str, _SharedBuild] = {}

    def cached(self, spec: Mapping[str, Any]) -> BuiltImage | None:
        """The finished build of ``spec`` if there is one; never builds."""
        return _layout.load_built(self.home, image_id(spec))

    async def build(self, spec: Mapping[str, Any], log: LogFn | None = None) -> BuiltImage:
        """Return the environment for ``spec``, building it first if needed. Raises ``BuildError``."""
        _check_supported(spec)
        ident = image_id(spec)
        built = _layout.load_built(self.home, ident)
        if built is not None:
            await _emit(log, f"image {ident[:12]} is cached at {built.path}")
            return built
        shared = self._builds.get(ident)
        if shared is None or shared.task is None:
            shared = _SharedBuild()
            self._builds[ident] = shared
            shared.task = asyncio.create_task(self._build_locked(ident, dict(spec), shared.log))
            shared.task.add_done_callback(lambda task: self._finished(ident, task))
        else:
            await _emit(log, f"image {ident[:12]} is already being built; waiting for that build")
        if log is not None:
            shared.listeners.append(log)
        try:
            # Shielded: one caller giving up must not cancel the build for the others.
            return await asyncio.shield(shared.task)
        finally:
            if log is not None and log in shared.listeners:
                shared.listeners.remove(log)

    def _finished(self, ident: str, task: asyncio.Task[BuiltImage]) -> None:
        self._builds.pop(ident, None)
        if not task.cancelled():
            task.exception()  # retrieved here so a build nobody awaited any more does not warn

    async def _build_locked(self, ident: str, spec: dict[str, Any], log: LogFn) -> BuiltImage:
        async def waiting() -> None:
            await log(f"image {ident[:12]} is being built by another process; waiting for it")

        _home_dirs(self.home)
        async with _lock.hold(_layout.lock_path(self.home, ident), on_wait=waiting):
            built = _layout.load_built(self.home, ident)
            if built is not None:
                await log(f"image {ident[:12]} is cached at {built.path}")
                return built
            for stale in _layout.tmp_dirs(self.home, ident):
                # Left by a build that crashed; we hold the lock, so nobody is using it.
                await asyncio.to_thread(shutil.rmtree, stale, True)
            return await self._build(ident, spec, log)

    async def _build(self, ident: str, spec: dict[str, Any], log: LogFn) -> BuiltImage:
        started = time.monotonic()
        interpreter = await asyncio.to_thread(find_interpreter, spec.get("python_version"), self.python_dirs)
        tmp = _layout.new_tmp_dir(self.home, ident)
        final = _layout.image_dir(self.home, ident)
        packages = [str(p) for p in spec.get("python_packages", [])]
        await log(f"building image {ident[:12]}: Python {interpreter.version}, {len(packages)} package(s)")
        try:
            freeze = await self._run_uv(tmp, interpreter, packages, log)
            seconds = round(time.monotonic() - started, 3)
            _layout.write_manifest(
                tmp,
                {
                    "id": ident,
                    "spec": spec,
                    "python_version": interpreter.version,
                    "interpreter": str(interpreter.path),
                    "build_seconds": seconds,
                    "packages": freeze,
                    "built_at": time.time(),
                },
            )
            if final.exists():
                # Not a complete build (we checked under the lock): clear it so the rename can land.
                await asyncio.to_thread(shutil.rmtree, final, True)
            tmp.rename(final)
        except OSError as exc:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, tmp, True))
            raise BuildError(f"image {ident[:12]} could not be stored: {exc}") from None
        except BaseException:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, tmp, True))
            raise
        await log(f"image {ident[:12]} built in {seconds:.1f}s")
        return BuiltImage(id=ident, path=final, python=final / "bin" / "python", python_version=interpreter.version)

    async def _run_uv(self, tmp: Path, interpreter: Interpreter, packages: list[str], log: LogFn) -> list[str]:
        """Create the venv and install into it; return ``uv pip freeze`` of the result."""
        env = uv_environment(self.home.uv_cache, self.index_url)
        python = str(tmp / "bin" / "python")
        index = ["--no-config", "--index-url", self.index_url] if self.index_url is not None else []
        try:
            await run_uv(
                ["venv", "--relocatable", "--no-config", "--python", str(interpreter.path), str(tmp)], env, log
            )
            if packages:
                install = ["pip", "install", "--python", python, "--compile-bytecode", "--link-mode", "hardlink"]
                await run_uv([*install, *index, "--", *packages], env, log)
            lines = await run_uv(["pip", "freeze", "--quiet", "--python", python], env, None)
        except UvFailed as failure:
            wanted = " ".join(packages) or "no packages"
            raise BuildError(f"image build failed ({wanted}):\n{failure.explanation()}") from None
        except OSError as exc:
            raise BuildError(f"image build could not run uv: {exc}") from None
        return [line for line in lines if line.strip()]


def _check_supported(spec: Mapping[str, Any]) -> None:
    """Refuse the spec fields that need a container image, which only the crun engine can build."""
    used = [field for field in _CONTAINER_FIELDS if spec.get(field)]
    if used:
        raise BuildError(
            f"image fields {', '.join(used)} need the crun engine, which builds container images; "
            "this build only makes Python environments (use python_packages and env_vars)"
        )


def _home_dirs(home: Home) -> None:
    (home.images / _layout.LOCKS).mkdir(parents=True, exist_ok=True)
    home.uv_cache.mkdir(parents=True, exist_ok=True)


async def _emit(log: Callable[[str], Awaitable[None]] | None, line: str) -> None:
    if log is not None:
        await log(line)
