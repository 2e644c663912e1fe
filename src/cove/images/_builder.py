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
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cove._host import python_envs
from cove._host.home import Home

from .._wire.image_spec import image_id
from . import _debian, _layout, _lock, _packages, _system
from ._errors import BuildError
from ._layout import BuiltImage
from ._python import Interpreter, find_interpreter
from ._uv import LogFn, UvFailed, build_box, run_uv, unisolated_install_options, uv_environment

logger = logging.getLogger(__name__)

_SYSTEM_FIELDS = ("system_packages", "commands")


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
    use. ``python_dirs`` are extra folders searched for ``python3.X``
    (default: ``$COVE_PYTHON_DIRS``, separated by ``:``). Specs with system
    packages or commands also get a system layer over the Debian base kept in
    ``base_dir`` (default ``$COVE_BASE_DIR`` or ``<home>/base``); that needs
    root and crun, which ``system_layers=None`` detects. Specs naming an
    existing environment must name a folder under ``python_env_roots``
    (default: ``$COVE_PYTHON_ENV_ROOTS``; none means such specs are refused).
    """

    def __init__(
        self,
        home: Home,
        index_url: str | None = None,
        python_dirs: Sequence[Path] | None = None,
        *,
        base_dir: Path | None = None,
        system_layers: bool | None = None,
        python_env_roots: Sequence[Path] | None = None,
    ) -> None:
        self.home = home
        self.index_url = index_url
        if python_dirs is None:
            python_dirs = [Path(p) for p in os.environ.get("COVE_PYTHON_DIRS", "").split(os.pathsep) if p]
        self.python_dirs = tuple(Path(p) for p in python_dirs)
        configured = os.environ.get("COVE_BASE_DIR")
        self.base_dir = base_dir or (Path(configured) if configured else home.root / "base")
        self.system_layers = system_layers
        roots = python_envs.roots_from_env() if python_env_roots is None else python_env_roots
        self.python_env_roots = tuple(roots)
        self._builds: dict[str, _SharedBuild] = {}

    def building(self) -> set[str]:
        """Ids of the images this builder is building now (garbage collection must spare them)."""
        return set(self._builds)

    def cached(self, spec: Mapping[str, Any]) -> BuiltImage | None:
        """The finished build of ``spec`` if there is one; never builds."""
        return _layout.load_built(self.home, image_id(spec))

    async def build(self, spec: Mapping[str, Any], log: LogFn | None = None) -> BuiltImage:
        """Return the environment for ``spec``, building it first if needed. Raises ``BuildError``."""
        self._check_supported(spec)
        ident = image_id(spec)
        if spec.get("python_env"):
            env = Path(str(spec["python_env"]))
            return await asyncio.to_thread(existing_env, ident, env, self.python_env_roots)
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

    async def _system_root(self, spec: dict[str, Any], log: LogFn) -> tuple[Interpreter, dict[str, Any]]:
        """For specs with system fields: the base, the system layer and the base's interpreter.

        Returns the interpreter to build the venv from and the manifest fields
        that tell workers which root filesystem the image runs on.
        """
        source = await _debian.apt_source(self.index_url)  # the reservoir's suite: then the only apt source
        base = await _debian.ensure_base(self.base_dir, log, source)
        interpreter, inside = await asyncio.to_thread(_debian.base_interpreter, base)
        _debian.check_version(spec.get("python_version"), interpreter)
        packages = [str(p) for p in spec.get("system_packages", [])]
        commands = [str(c) for c in spec.get("commands", [])]
        layer = await _system.build_layer(self.home, base, packages, commands, log, source)
        return interpreter, {
            "rootfs": str(base),
            "layers": [str(layer.fs)],
            "layer_ids": [layer.id],
            "base_id": base.name,
            "interpreter_inside": str(inside),
            "suite": source.suite if source else _debian.SUITE,
        }

    async def _build(self, ident: str, spec: dict[str, Any], log: LogFn) -> BuiltImage:
        started = time.monotonic()
        root: dict[str, Any] = {}
        if _needs_system_layer(spec):
            interpreter, root = await self._system_root(spec, log)
        else:
            interpreter = await asyncio.to_thread(find_interpreter, spec.get("python_version"), self.python_dirs)
        tmp = _layout.new_tmp_dir(self.home, ident)
        final = _layout.image_dir(self.home, ident)
        packages = [str(p) for p in spec.get("python_packages", [])]
        await log(f"building image {ident[:12]}: Python {interpreter.version}, {len(packages)} package(s)")
        try:
            freeze = await self._run_uv(tmp, interpreter, packages, log)
            if root:
                base = Path(root["rootfs"])
                await asyncio.to_thread(_debian.retarget_venv, tmp, base, Path(root["interpreter_inside"]))
            await asyncio.to_thread(_write_packages, tmp, interpreter.version, root)
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
                    **root,
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
        rootfs, layers = _layout.roots(root)
        return BuiltImage(
            id=ident,
            path=final,
            python=final / "bin" / "python",
            python_version=interpreter.version,
            rootfs=rootfs,
            layers=layers,
        )

    async def _run_uv(self, tmp: Path, interpreter: Interpreter, packages: list[str], log: LogFn) -> list[str]:
        """Create the venv and install into it, in a build container; return ``uv pip freeze`` of the result.

        Every uv command runs in the build's container (see ``_uv.build_box``):
        uv starts package build backends, which are the tenant's code.
        """
        env = uv_environment(self.home.uv_cache, self.index_url)
        index = ["--no-config", "--index-url", self.index_url] if self.index_url is not None else []
        try:
            async with build_box(
                self.home.uv_cache, tmp, interpreter.path, self.index_url, log, installs=bool(packages)
            ) as place:
                box, venv = place.box, place.venv
                python = str(venv / "bin" / "python")
                await run_uv(
                    ["venv", "--relocatable", "--no-config", "--python", str(interpreter.path), str(venv)],
                    env,
                    log,
                    box=box,
                )
                if packages:
                    install = ["pip", "install", "--python", python, "--compile-bytecode", "--link-mode", "hardlink"]
                    if box is None:
                        install += unisolated_install_options()
                    await run_uv([*install, *index, "--", *packages], env, log, box=box)
                lines = await run_uv(["pip", "freeze", "--quiet", "--python", python], env, None, box=box)
        except UvFailed as failure:
            wanted = " ".join(packages) or "no packages"
            raise BuildError(f"image build failed ({wanted}):\n{failure.explanation()}") from None
        except OSError as exc:
            raise BuildError(f"image build could not run uv: {exc}") from None
        return [line for line in lines if line.strip()]

    def _check_supported(self, spec: Mapping[str, Any]) -> None:
        """Refuse what this machine cannot build, before anything is started."""
        if spec.get("base_image"):
            raise BuildError(
                "base_image is not supported: images run on Cove's Debian base; "
                "add what you need with system_packages and commands"
            )
        if not _needs_system_layer(spec):
            return
        missing = _debian.missing_tools() if self.system_layers is None else ([] if self.system_layers else ["crun"])
        if missing:
            used = ", ".join(field for field in _SYSTEM_FIELDS if spec.get(field))
            raise BuildError(
                f"image fields {used} need the crun engine, which builds system layers in containers; "
                f"this server lacks {' and '.join(missing)} (use python_packages and env_vars, or run it as root "
                "with crun and debootstrap installed)"
            )


def _write_packages(folder: Path, python_version: str, root: dict[str, Any]) -> None:
    """Record what the image holds (see ``_packages``) inside it, before the folder is renamed into place."""
    rootfs, layers = _layout.roots(root)
    roots = [*layers, rootfs] if rootfs is not None else []
    suite = root.get("suite") if isinstance(root.get("suite"), str) else None
    _packages.write(folder, _packages.collect(folder, python_version, roots, suite))


def _needs_system_layer(spec: Mapping[str, Any]) -> bool:
    return any(spec.get(field) for field in _SYSTEM_FIELDS)


def _home_dirs(home: Home) -> None:
    (home.images / _layout.LOCKS).mkdir(parents=True, exist_ok=True)
    home.uv_cache.mkdir(parents=True, exist_ok=True)


async def _emit(log: Callable[[str], Awaitable[None]] | None, line: str) -> None:
    if log is not None:
        await log(line)


def existing_env(ident: str, env: Path, roots: Sequence[Path]) -> BuiltImage:
    """An image that names an environment already on the workers: nothing to build or store.

    Only folders under the operator's python-env ``roots`` qualify (after
    resolving symlinks): the folder is mounted into containers. Its version is
    read from its metadata and nothing in it is run here, because whoever can
    write into it must not get to run code on the gateway. When the folder is
    not on this machine the version stays unknown; the workers check it.
    """
    try:
        resolved = python_envs.confine(env, roots)
    except python_envs.PythonEnvRefused as exc:
        raise BuildError(str(exc)) from None
    return BuiltImage(
        id=ident,
        path=env,
        python=python_envs.interpreter(env),
        python_version=python_envs.read_version(resolved),
    )
